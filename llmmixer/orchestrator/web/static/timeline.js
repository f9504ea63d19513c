// A run's timeline: each leg's start, first token and end (won, done, cancelled, error) on one time axis, so
// a user sees at a glance why the winner won and when the losers stopped.
//
// The data is the one orchestrator/timeline.py builds ({duration_ms, legs: [{source, start_ms, first_token_ms,
// end_ms, end}]}), read from a finished run's result; while a run streams, the same is built here from the
// events' timestamps (fromMarks). Bars are absolutely positioned percentages of one shared track width.
"use strict";

(function () {
  // Which event types mark the timeline, and the end each leg type stands for: from /api/meta (configure()).
  const MARKS = new Set();
  const ENDS = {};
  function configure(meta) {
    for (const type of meta.timeline_types || []) MARKS.add(type);
    Object.assign(ENDS, meta.leg_ends || {});
  }

  // marks: [{type, source, ts}] (ts in seconds); legs: the result's legs (final statuses), optional.
  function fromMarks(marks, legs, nowTs) {
    if (!marks.length) return null;
    const legStarts = marks.filter((m) => m.type === "leg.started").map((m) => m.ts);
    const origin = legStarts.length ? Math.min(...legStarts) : marks[0].ts;
    const doneMark = marks.find((m) => m.type === "run.done");
    const finish = doneMark ? doneMark.ts : (nowTs || Math.max(...marks.map((m) => m.ts)));
    const ms = (ts) => Math.round((ts - origin) * 10000) / 10;
    const rows = new Map();
    for (const m of marks) {
      if (m.type === "run.started" || m.type === "run.done") continue;
      let row = rows.get(m.source);
      if (!row) {
        row = { source: m.source, start_ms: null, first_token_ms: null, end_ms: null, end: null };
        rows.set(m.source, row);
      }
      if (m.type === "leg.started" && row.start_ms === null) row.start_ms = ms(m.ts);
      else if (m.type === "leg.first_token" && row.first_token_ms === null) row.first_token_ms = ms(m.ts);
      else if (ENDS[m.type]) { row.end_ms = ms(m.ts); row.end = ENDS[m.type]; }
    }
    for (const leg of legs || []) {
      const row = rows.get(leg.source);
      if (row && ["won", "done", "cancelled", "error"].includes(leg.status)) row.end = leg.status;
    }
    for (const row of rows.values()) {
      if (row.end_ms === null) { row.end_ms = ms(finish); row.end = row.end || (doneMark ? "cancelled" : "running"); }
    }
    return { duration_ms: ms(finish), legs: [...rows.values()] };
  }

  function fmt(v) { return typeof v === "number" ? `${Math.round(v)} ms` : "–"; }

  function render(container, timeline) {
    container.textContent = "";
    if (!timeline || !timeline.legs || !timeline.legs.length) {
      container.hidden = true;
      return;
    }
    container.hidden = false;
    const duration = Math.max(Number(timeline.duration_ms) || 0, 1);
    const pct = (v) => `${Math.max(0, Math.min(100, (Number(v) || 0) / duration * 100))}%`;
    const title = document.createElement("h2");
    title.textContent = "Timeline";
    container.appendChild(title);
    for (const leg of timeline.legs) {
      const row = document.createElement("div");
      row.className = "timeline-row";
      row.dataset.source = leg.source;
      row.dataset.end = leg.end || "";
      const label = document.createElement("span");
      label.className = "timeline-label";
      label.textContent = leg.source;
      const track = document.createElement("div");
      track.className = "timeline-track";
      const start = leg.start_ms || 0;
      const first = leg.first_token_ms;
      const end = leg.end_ms === null || leg.end_ms === undefined ? duration : leg.end_ms;
      const streamFrom = first === null || first === undefined ? end : first;
      const wait = document.createElement("div");
      wait.className = "seg seg-wait";
      wait.style.left = pct(start);
      wait.style.width = `calc(${pct(streamFrom)} - ${pct(start)})`;
      track.appendChild(wait);
      if (first !== null && first !== undefined) {
        const stream = document.createElement("div");
        stream.className = "seg seg-stream";
        stream.dataset.end = leg.end || "";
        stream.style.left = pct(first);
        stream.style.width = `calc(${pct(end)} - ${pct(first)})`;
        track.appendChild(stream);
      }
      const marker = document.createElement("div");
      marker.className = "seg-end";
      marker.dataset.end = leg.end || "";
      marker.style.left = pct(end);
      marker.title = `${leg.end || "end"} at ${fmt(end)}`;
      track.appendChild(marker);
      const figures = document.createElement("span");
      figures.className = "timeline-figures";
      figures.textContent = `${fmt(start)} → ${first === null || first === undefined ? "no token" : fmt(first)} → ` +
        `${leg.end || "end"} ${fmt(end)}`;
      row.dataset.startMs = String(start);
      row.dataset.firstTokenMs = first === null || first === undefined ? "" : String(first);
      row.dataset.endMs = String(end);
      row.append(label, track, figures);
      container.appendChild(row);
    }
    const axis = document.createElement("div");
    axis.className = "timeline-axis";
    axis.innerHTML = "<span>0</span><span></span>";
    axis.lastChild.textContent = fmt(duration);
    container.appendChild(axis);
    container.dataset.durationMs = String(duration);
  }

  window.LLMMixerTimeline = { MARKS, configure, fromMarks, render };
})();

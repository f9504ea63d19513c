// One run's state, built from the orchestrator's events, and its rendering: the legs' columns, the run's line and
// the timeline. Shared by the dashboard (app.js, fed by /events) and the race view of `llmmixer mcp` (race.js, fed
// through an MCP Apps host), so both read the event model the same way.
//
// LLMMixerRun.create({onStarted, onDone, onRunInfo}) gives a fresh state and the functions over it; onStarted(run) and
// onDone(run) are called when a run's run.started and run.done events are applied, onRunInfo(run) after the run's
// line is drawn. Rendering expects the page's #columns, #run-info, #cancel and #timeline.
"use strict";

(function () {
  const SEEN_LIMIT = 100000;
  const $ = (sel) => document.querySelector(sel);
  // One leg's column: its name, status, figures, text and error.
  const COLUMN = `<section class="column">
      <header><h2 class="name"></h2><span class="badge" data-status="waiting">waiting</span></header>
      <dl class="stats">
        <div><dt>TTFT</dt><dd class="ttft">–</dd></div>
        <div><dt>tokens</dt><dd class="tokens">–</dd></div>
        <div><dt>cost</dt><dd class="cost">–</dd></div>
      </dl>
      <pre class="text"></pre>
      <p class="error" hidden></p>
    </section>`;

  function create(hooks) {
    hooks = Object.assign({ onStarted() {}, onDone() {}, onRunInfo() {} }, hooks || {});
    // ---- state -------------------------------------------------------------------------------------------------

    const state = {
      runs: new Map(), // run id -> run
      current: null, // run id shown
      seen: new Set(),
      seenOrder: [],
      lastEventId: null,
      stats: { opens: 0, events: 0, duplicates: 0, gaps: 0, errors: 0 },
    };

    function runFor(id) {
      let run = state.runs.get(id);
      if (!run) {
        run = { id, kind: null, mode: null, legs: new Map(), order: [], winner: null, done: false, result: null,
          terminalChunks: [], exit: null, waiting: false, prompt: null, status: null, marks: [] };
        state.runs.set(id, run);
      }
      return run;
    }

    function legFor(run, source) {
      let leg = run.legs.get(source);
      if (!leg) {
        // text: what is shown (deltas, settled by the final result); streamed: exactly what the deltas built.
        leg = { source, status: "waiting", text: "", streamed: "", ttft_ms: null, tokens: null, cost_usd: null, error: null };
        run.legs.set(source, leg);
        run.order.push(source);
      }
      return leg;
    }

    function remember(id) {
      if (id === undefined || id === null || id === "") return true;
      if (state.seen.has(id)) return false;
      state.seen.add(id);
      state.seenOrder.push(id);
      if (state.seenOrder.length > SEEN_LIMIT) state.seen.delete(state.seenOrder.shift());
      return true;
    }

    // ---- applying events -----------------------------------------------------------------------------------------

    function legSource(ev) {
      const d = ev.data || {};
      return d.leg || d.source || ev.source;
    }

    function usageTokens(d) {
      const u = d.usage || {};
      if (typeof u.output_tokens === "number") return u.output_tokens;
      if (typeof d.output_tokens === "number") return d.output_tokens;
      if (typeof d.tokens === "number") return d.tokens;
      return null;
    }

    function applyLegFigures(leg, d) {
      if (typeof d.ttft_ms === "number") leg.ttft_ms = d.ttft_ms;
      const tokens = usageTokens(d);
      if (tokens !== null) leg.tokens = tokens;
      if (typeof d.cost_usd === "number") leg.cost_usd = d.cost_usd;
    }

    function apply(ev) {
      const run = runFor(ev.run);
      const d = ev.data || {};
      const changed = { run: ev.run, source: null, text: null, full: false };
      if (window.LLMMixerTimeline && window.LLMMixerTimeline.MARKS.has(ev.type) && typeof ev.ts === "number") {
        run.marks.push({ type: ev.type, source: ev.source, ts: ev.ts });
        changed.timeline = true;
      }
      switch (ev.type) {
        case "run.started":
          run.kind = d.kind || (d.command ? "command" : "ask");
          run.mode = d.mode || run.mode;
          run.prompt = d.prompt || d.command || run.prompt;
          if (d.conversation_id) run.conversationId = d.conversation_id;
          if (Array.isArray(d.models)) run.models = d.models;
          for (const m of d.models || d.agents || d.legs || []) legFor(run, typeof m === "string" ? m : m.source || m.name);
          changed.full = true;
          changed.started = true;
          hooks.onStarted(run);
          break;
        case "leg.queued": {
          const leg = legFor(run, legSource(ev));
          leg.status = "queued"; // its server is busy: the leg waits for a slot
          changed.source = leg.source;
          break;
        }
        case "leg.started": {
          const leg = legFor(run, legSource(ev));
          if (d.role) leg.role = d.role;
          if (d.server) leg.server = d.server;
          if (d.model) leg.model = leg.asked = d.model;  // the model asked for (the vendor may answer a dated id)
          if (leg.status === "waiting" || leg.status === "queued" || leg.status === "cancelled") leg.status = "streaming";
          changed.source = leg.source;
          break;
        }
        case "delta": {
          const leg = legFor(run, legSource(ev));
          const piece = d.text !== undefined ? d.text : (d.delta !== undefined ? d.delta : "");
          leg.text += piece;
          leg.streamed += piece;
          if (leg.status === "waiting") leg.status = "streaming";
          leg.tokens = (leg.tokens || 0) + (d.text !== undefined || d.delta !== undefined ? 1 : 0);
          changed.source = leg.source;
          changed.text = piece;
          break;
        }
        case "leg.first_token": {
          const leg = legFor(run, legSource(ev));
          applyLegFigures(leg, d);
          if (leg.status === "waiting") leg.status = "streaming";
          changed.source = leg.source;
          break;
        }
        case "leg.done": {
          const leg = legFor(run, legSource(ev));
          applyLegFigures(leg, d);
          if (leg.status !== "won") leg.status = run.winner === leg.source ? "won" : "done";
          changed.source = leg.source;
          break;
        }
        case "leg.error": {
          const leg = legFor(run, legSource(ev));
          applyLegFigures(leg, d);
          leg.status = "error";
          leg.error = d.error && d.error.error ? d.error.error : (d.error || d);
          changed.source = leg.source;
          break;
        }
        case "leg.cancelled": {
          const leg = legFor(run, legSource(ev));
          applyLegFigures(leg, d);
          if (leg.status !== "won") leg.status = "cancelled";
          changed.source = leg.source;
          break;
        }
        case "leg.skipped": {
          const leg = legFor(run, legSource(ev));
          leg.status = "skipped";
          leg.error = { kind: "skipped", message: d.reason || "" };
          changed.source = leg.source;
          break;
        }
        case "leg.recovery": {
          run.recovery = (run.recovery || []).concat([d]);
          changed.full = true;
          break;
        }
        case "race.won": {
          const winner = d.winner || d.source || (ev.source !== "orchestrator" ? ev.source : null);
          if (winner) {
            run.winner = winner;
            legFor(run, winner).status = "won";
            changed.source = winner;
          }
          break;
        }
        case "pty.output":
          run.kind = "command";
          run.terminalChunks.push(d.text !== undefined ? d.text : (d.data !== undefined ? d.data : ""));
          changed.terminal = d.text !== undefined ? d.text : (d.data || "");
          break;
        case "pty.waiting":
          run.kind = "command";
          run.waiting = true;
          changed.full = true;
          break;
        case "pty.exit":
          run.kind = "command";
          run.waiting = false;
          run.exit = d.exit_code !== undefined ? d.exit_code : (d.code !== undefined ? d.code : d.status);
          changed.full = true;
          break;
        case "run.done":
          run.done = true;
          run.status = d.status || run.status;
          if (d.winner) run.winner = d.winner;
          mergeResult(run, d.result || d);
          changed.full = true;
          hooks.onDone(run);
          break;
        default:
          if (ev.type.startsWith("agent.") && window.LLMMixerAgents) {
            const leg = legFor(run, ev.source);
            window.LLMMixerAgents.apply(run, leg, ev);
            changed.source = leg.source;
          }
          break;
      }
      return changed;
    }

    // A final result (the `llmmixer ask --json` shape) settles each leg's figures and status.
    function mergeResult(run, result) {
      if (!result || typeof result !== "object") return;
      run.result = result;
      if (result.mode) run.mode = result.mode;
      if (result.winner) run.winner = result.winner;
      for (const l of result.legs || []) {
        if (!l || !(l.source || l.agent)) continue;
        const leg = legFor(run, l.source || l.agent);
        if (l.status) leg.status = l.status;
        if (l.role) leg.role = l.role;
        if (l.server) leg.server = l.server;
        if (l.model) leg.model = l.model;
        if (l.reason && !l.error) leg.error = { kind: l.status || "note", message: l.reason };
        if (typeof l.text === "string" && l.text.length >= leg.text.length && l.text.startsWith(leg.text)) {
          leg.text = l.text;
        } else if (typeof l.text === "string" && !leg.text) {
          leg.text = l.text;
        }
        applyLegFigures(leg, l);
        if (l.error) leg.error = l.error.error || l.error;
      }
    }


    function fmtMs(v) { return typeof v === "number" ? `${Math.round(v)} ms` : "–"; }
    function fmtCost(v) {
      if (typeof v !== "number") return "–";
      return v === 0 ? "$0" : (v < 0.01 ? `$${v.toPrecision(2)}` : `$${v.toFixed(4)}`);
    }

    function columnFor(source) {
      const columns = $("#columns");
      let col = columns.querySelector(`.column[data-source="${CSS.escape(source)}"]`);
      if (!col) {
        const holder = document.createElement("div");
        holder.innerHTML = COLUMN;
        col = holder.firstElementChild;
        col.dataset.source = source;
        col.querySelector(".name").textContent = source;
        columns.appendChild(col);
      }
      return col;
    }

    function renderLeg(run, source, appended) {
      const leg = run.legs.get(source);
      if (!leg) return;
      const col = columnFor(source);
      if (leg.role && leg.role !== "proposer") {
        // the aggregator or judge (or a recovery leg): its own column, saying which server plays the part
        col.dataset.role = leg.role;
        col.querySelector(".name").textContent = leg.server ? `${source} · ${leg.server}` : source;
      } else if (leg.model) {
        // Each column names the model it runs (gpt:gpt-5 already does).
        col.querySelector(".name").textContent = source.includes(":") ? source : `${source} · ${leg.model}`;
        col.dataset.model = leg.model;
      }
      const badge = col.querySelector(".badge");
      badge.dataset.status = leg.status;
      badge.textContent = leg.status;
      col.dataset.status = leg.status;
      col.querySelector(".ttft").textContent = fmtMs(leg.ttft_ms);
      col.querySelector(".tokens").textContent = leg.tokens === null ? "–" : String(leg.tokens);
      col.querySelector(".cost").textContent = fmtCost(leg.cost_usd);
      const pre = col.querySelector(".text");
      if (appended !== null && appended !== undefined && pre.dataset.len !== undefined &&
          Number(pre.dataset.len) + appended.length === leg.text.length) {
        pre.appendChild(document.createTextNode(appended));
      } else if (pre.textContent !== leg.text) {
        pre.textContent = leg.text;
      }
      pre.dataset.len = String(leg.text.length);
      pre.scrollTop = pre.scrollHeight;
      if (run.kind === "agent" && window.LLMMixerAgents) window.LLMMixerAgents.render(col, leg, run);
      const err = col.querySelector(".error");
      if (leg.error) {
        err.hidden = false;
        err.textContent = `${leg.error.kind || "error"}: ${leg.error.message || ""}`;
      } else {
        err.hidden = true;
      }
    }

    function renderRunInfo(run) {
      const info = $("#run-info");
      info.textContent = "";
      const add = (label, value, cls) => {
        const span = document.createElement("span");
        span.className = cls || "";
        span.textContent = `${label}${value}`;
        info.appendChild(span);
      };
      add("run ", run.id, "run-id");
      if (run.mode) add("mode ", run.mode);
      if (run.winner) add("winner ", run.winner, "winner");
      const total = run.result && typeof run.result.total_cost_usd === "number" ? run.result.total_cost_usd : null;
      if (total !== null) add("total ", fmtCost(total));
      const verdict = run.result && run.result.verdict;
      if (verdict && verdict.reason) add("judge ", `${verdict.winner}: ${verdict.reason}`, "verdict");
      const synthesis = run.result && run.result.synthesis;
      if (synthesis && synthesis.left_out && synthesis.left_out.length) {
        add("left out ", synthesis.left_out.map((l) => `${l.source} (${l.why})`).join(", "), "left-out");
      }
      for (const step of run.recovery || (run.result && run.result.recovery) || []) {
        add("recovered ", `${step.from} → ${[].concat(step.to).join(", ")}`, "recovery");
      }
      const stateName = run.done ? (run.status || "done") : "running";
      add("", stateName, `state ${run.done ? "done" : "running"} ${stateName}`);
      info.dataset.run = run.id;
      info.dataset.done = run.done ? "true" : "false";
      $("#cancel").disabled = run.done;
      hooks.onRunInfo(run);
    }

    function renderTimeline(run) {
      const box = $("#timeline");
      if (!box || !window.LLMMixerTimeline) return;
      const T = window.LLMMixerTimeline;
      const stored = run.result && run.result.timeline;
      const data = stored || (run.kind === "command" ? null : T.fromMarks(run.marks, run.result && run.result.legs,
        Date.now() / 1000));
      T.render(box, data);
    }


    return { state, runFor, legFor, remember, apply, mergeResult, fmtMs, fmtCost, renderLeg, renderRunInfo,
      renderTimeline };
  }

  window.LLMMixerRun = { create };
})();

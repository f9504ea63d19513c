// The race view of `llmmixer mcp` inside an MCP Apps host (ui://llmmixer/race): the legs of an ask or agent run
// as they stream, its timeline, cost, and Cancel, drawn by the dashboard's own run model (run.js).
//
// The view talks to the host only, over postMessage (JSON-RPC 2.0, the MCP Apps protocol 2026-01-26): ui/initialize
// tells it the tools/call id of the ask or agent call it belongs to (hostContext.toolInfo.id); it then reads the
// run's events through the host with the app-only tool race_events, waiting on the server for each next batch, and
// stops the run with the cancel tool. A host that gives no call id still sends the call's result
// (ui/notifications/tool-result), whose job_id names the run.
"use strict";

(function () {
  const PROTOCOL_VERSION = "2026-01-26";
  const WAIT_S = 10;
  const $ = (sel) => document.querySelector(sel);
  const config = window.LLMMixerRaceConfig || {};
  if (window.LLMMixerTimeline) window.LLMMixerTimeline.configure(config);
  const view = window.LLMMixerRun.create();
  const race = { callId: null, jobId: null, after: null, following: false, stopped: false };

  // ---- JSON-RPC over postMessage ---------------------------------------------------------------------------------

  let nextId = 1;
  const pending = new Map();
  const send = (message) => window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  const notify = (method, params) => send({ method, params: params || {} });

  function request(method, params) {
    const id = nextId++;
    send({ id, method, params: params || {} });
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
  }

  async function callTool(name, args) {
    const result = await request("tools/call", { name, arguments: args });
    if (result.isError) throw new Error((result.content || [])[0]?.text || `${name} failed`);
    return result.structuredContent || JSON.parse(result.content[0].text);
  }

  const handlers = {
    "ui/notifications/tool-result": (result) => {
      let payload = result.structuredContent;
      if (!payload) {
        try { payload = JSON.parse((result.content || [])[0]?.text || "null"); } catch (e) { payload = null; }
      }
      if (!payload || !payload.job_id) {
        if (result.isError) notice((result.content || [])[0]?.text || "the call failed", "error");
        race.stopped = true;  // the call started no run
        return;
      }
      const run = view.runFor(payload.job_id);
      view.mergeResult(run, payload);
      if (payload.status && payload.status !== "running") {
        run.done = true;
        run.status = payload.status;
      }
      follow(payload.job_id);
      show(run);
    },
    "ui/notifications/tool-cancelled": (params) => notice(`cancelled${params.reason ? `: ${params.reason}` : ""}`),
    "ui/notifications/host-context-changed": (context) => applyContext(context),
  };

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const message = event.data;
    if (!message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined && pending.has(message.id)) {
      const { resolve, reject } = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) reject(new Error(message.error.message || "error"));
      else resolve(message.result);
    } else if (message.method !== undefined && message.id !== undefined) {
      if (message.method === "ui/resource-teardown") race.stopped = true;
      send({ id: message.id, result: {} });  // ping, teardown: nothing to answer but that it was heard
    } else if (handlers[message.method]) {
      handlers[message.method](message.params || {});
    }
  });

  // ---- the run ----------------------------------------------------------------------------------------------------

  function notice(text, kind) {
    const el = $("#notice");
    el.hidden = !text;
    el.textContent = text || "";
    el.dataset.kind = kind || "info";
  }

  function show(run) {
    view.state.current = run.id;
    for (const source of run.order) view.renderLeg(run, source, null);
    view.renderRunInfo(run);
    view.renderTimeline(run);
    document.body.dataset.run = run.id;
    document.body.dataset.done = run.done ? "true" : "false";
  }

  function render(changed) {
    const run = view.state.runs.get(changed.run);
    if (changed.full) return show(run);
    if (changed.timeline) view.renderTimeline(run);
    if (changed.source) view.renderLeg(run, changed.source, changed.text);
  }

  // Reads the run's events through the host until the run is over; by the call's id until the job is known.
  async function follow(jobId) {
    if (jobId) race.jobId = race.jobId || jobId;
    if (race.following || race.stopped) return;
    race.following = true;
    try {
      while (!race.stopped) {
        const args = race.jobId ? { job_id: race.jobId, after: race.after, wait_s: WAIT_S }
          : { call: String(race.callId), wait_s: WAIT_S };
        let out;
        try {
          out = await callTool("race_events", args);
        } catch (e) {
          notice(`cannot read the run: ${e.message}`, "error");
          return;
        }
        if (!out.job_id) continue;  // the call has not started its job yet
        race.jobId = out.job_id;
        for (const ev of out.events) {
          if (view.remember(ev.id)) render(view.apply(ev));
        }
        race.after = out.after;
        const run = view.runFor(race.jobId);
        if (view.state.current !== run.id) show(run);
        if (run.done && !out.events.length) return;
      }
    } finally {
      race.following = false;
    }
  }

  $("#cancel").addEventListener("click", async () => {
    if (!race.jobId) return;
    $("#cancel").disabled = true;
    try {
      const out = await callTool("cancel", { job_id: race.jobId });
      notice(`run ${out.status || "cancelled"}`);
    } catch (e) {
      notice(`cancel failed: ${e.message}`, "error");
      $("#cancel").disabled = false;
    }
  });

  // ---- the host ---------------------------------------------------------------------------------------------------

  function applyContext(context) {
    if (context.theme) document.documentElement.style.colorScheme = context.theme;
    const id = context.toolInfo && context.toolInfo.id;
    if (id !== undefined && id !== null && race.callId === null) {
      race.callId = id;
      follow(null);
    }
  }

  async function start() {
    const init = await request("ui/initialize", {
      appInfo: { name: "llmmixer-race", version: "1" },
      appCapabilities: { availableDisplayModes: ["inline"] },
      protocolVersion: PROTOCOL_VERSION,
    });
    notify("ui/notifications/initialized");
    applyContext(init.hostContext || {});
    if (window.ResizeObserver) {
      let last = "";
      new ResizeObserver(() => {
        const size = { width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight };
        const key = `${size.width}x${size.height}`;
        if (key !== last) { last = key; notify("ui/notifications/size-changed", size); }
      }).observe(document.documentElement);
    }
  }

  start().catch((e) => notice(`the host did not answer: ${e.message}`, "error"));
  window.llmmixerRace = { race, view };
})();

// The LLMMixer dashboard: no build step, no network beyond this server, works offline.
//
// One EventSource on /events feeds a per-run state built from events; the page renders whichever run is selected.
// Events are deduplicated by their store id, so a replay after a reconnect (EventSource resends Last-Event-ID by
// itself; after a hard failure we reconnect with ?last_event_id=) never shows anything twice. An `event: gap` means
// the server no longer had some history: we say so and fall back to the run's final result from the API.
"use strict";

(function () {
  // The event types, the modes and the registered servers come from /api/meta: they are defined once, in Python.
  const meta = { event_types: [], modes: [], default_mode: null, servers: [] };
  const $ = (sel) => document.querySelector(sel);

  // The run state and its rendering (run.js), shared with the MCP race view.
  const {
    state, runFor, legFor, remember, apply, mergeResult, fmtCost, renderLeg, renderRunInfo, renderTimeline,
  } = window.LLMMixerRun.create({
    onStarted: () => scheduleHistory(),
    onDone: () => scheduleHistory(),
    onRunInfo: (run) => renderFollowUp(run),
  });

  // ---- rendering -----------------------------------------------------------------------------------------------

  let terminal = null;
  let terminalRun = null;

  // A finished ask's conversation can be continued: the follow-up goes to the same models with the turns so far.
  function renderFollowUp(run) {
    const form = $("#follow-up");
    form.hidden = !(run.done && run.conversationId && (run.kind === "ask" || run.kind === null) && !run.terminalChunks.length);
    form.dataset.conversation = run.conversationId || "";
  }

  function followUpRequest(run, prompt) {
    const body = { prompt, conversation_id: run.conversationId };
    if (run.mode) body.mode = run.mode;
    const models = run.models || run.order.filter((s) => !run.legs.get(s).role || run.legs.get(s).role === "proposer");
    if (models.length) body.models = models;
    const modelFor = {};
    for (const source of models) {
      const leg = run.legs.get(source);
      if (leg && (leg.asked || leg.model) && !source.includes(":")) modelFor[source] = leg.asked || leg.model;
    }
    if (Object.keys(modelFor).length) body.model_for = modelFor;
    return body;
  }

  function renderTerminal(run, appended) {
    const pane = $("#terminal-pane");
    if (run.kind !== "command" && !run.terminalChunks.length) {
      pane.hidden = true;
      return;
    }
    pane.hidden = false;
    if (!terminal) terminal = new window.LLMMixerAnsi.AnsiTerminal($("#terminal"));
    if (terminalRun !== run.id) {
      terminal.reset();
      for (const chunk of run.terminalChunks) terminal.write(chunk);
      terminalRun = run.id;
    } else if (appended !== undefined && appended !== null) {
      terminal.write(appended);
    }
    const status = $("#terminal-status");
    if (run.done && (run.exit === null || run.exit === undefined)) {
      // Ended without an exit code: cancelled, refused by policy, or the runner failed.
      const ended = run.status || "done";
      status.textContent = ended;
      status.dataset.status = ended === "done" ? "done" : (ended === "cancelled" ? "cancelled" : "error");
    } else if (run.exit !== null && run.exit !== undefined) {
      status.textContent = `exit ${run.exit}`;
      status.dataset.status = run.exit === 0 ? "done" : "error";
    } else {
      status.textContent = run.waiting ? "waiting for input" : "running";
      status.dataset.status = run.waiting ? "waiting" : "streaming";
    }
  }

  function renderRun(run) {
    $("#columns").textContent = "";
    for (const source of run.order) renderLeg(run, source, null);
    renderRunInfo(run);
    renderTerminal(run, null);
    renderTimeline(run);
  }

  function render(changed) {
    if (changed.started && changed.run !== state.current) {
      const shown = state.current && state.runs.get(state.current);
      if (!shown || shown.done) show(changed.run);  // another client's run, live
      return;
    }
    if (changed.run !== state.current) return;
    const run = state.runs.get(state.current);
    if (changed.full) {
      for (const source of run.order) renderLeg(run, source, null);
      renderRunInfo(run);
      renderTerminal(run, null);
      renderTimeline(run);
      return;
    }
    if (changed.timeline) renderTimeline(run);
    if (changed.source) renderLeg(run, changed.source, changed.text);
    if (changed.terminal !== undefined) renderTerminal(run, changed.terminal);
  }

  function show(runId) {
    state.current = runId;
    renderRun(runFor(runId));
    for (const li of document.querySelectorAll("#history li")) {
      li.classList.toggle("selected", li.dataset.run === runId);
    }
  }

  function notice(text, kind) {
    const el = $("#notice");
    el.hidden = !text;
    el.textContent = text || "";
    el.dataset.kind = kind || "info";
  }

  // ---- the event stream ----------------------------------------------------------------------------------------

  let source = null;
  let retryTimer = null;
  let backoffMs = 500;

  function setConn(stateName, label) {
    const el = $("#conn");
    el.dataset.state = stateName;
    el.querySelector(".label").textContent = label || stateName;
  }

  function onEvent(message) {
    let ev;
    try {
      ev = JSON.parse(message.data);
    } catch (e) {
      state.stats.errors++;
      return;
    }
    const id = message.lastEventId || ev.id;
    if (!remember(id)) {
      state.stats.duplicates++;
      return;
    }
    if (id) state.lastEventId = id;
    if (!ev.type) ev.type = message.type;
    if (ev.type === "run.started") runFor(ev.run).sawStart = true;
    if (replays.has(ev.run)) return;  // that run is being replayed from its first event, in order
    state.stats.events++;
    render(apply(ev));
  }

  // A run this page did not see start (opened from the history after a reload, or started before the page was):
  // its events from the first one, in order, then live (/events?run=ID), into a fresh copy of its state, so no
  // character streamed before the page looked is lost. The main stream skips that run until the replay ends.
  const replays = new Map();
  function replayRun(runId) {
    if (replays.has(runId)) return;
    const fresh = runFor(runId);
    state.runs.delete(runId);
    const run = runFor(runId);
    run.prompt = fresh.prompt;
    run.sawStart = true;
    const seenHere = new Set();
    const replay = new EventSource(`/events?run=${encodeURIComponent(runId)}`);
    replays.set(runId, replay);
    const onReplay = (message) => {
      let ev;
      try { ev = JSON.parse(message.data); } catch (e) { return; }
      const id = message.lastEventId || ev.id;
      if (id && seenHere.has(id)) return;
      if (id) seenHere.add(id);
      remember(id);  // so the main stream, which may lag behind this one, never applies it a second time
      if (!ev.type) ev.type = message.type;
      state.stats.events++;
      render(apply(ev));
      if (ev.type === "run.done") {
        replay.close();
        replays.delete(runId);
      }
    };
    for (const type of meta.event_types) replay.addEventListener(type, onReplay);
    replay.addEventListener("message", onReplay);
    replay.addEventListener("gap", () => { replay.close(); replays.delete(runId); refreshRun(runId); });
  }

  // Store ids are opaque but ordered: "42" or "1732500000123-0". Compare them as numbers, never as strings.
  function idKey(id) {
    const [head, tail] = String(id).split("-");
    return [Number(head), Number(tail || 0)];
  }
  function idBefore(a, b) {
    const [x, y] = [idKey(a), idKey(b)];
    return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
  }

  function onGap(message) {
    state.stats.gaps++;
    let info = {};
    try { info = JSON.parse(message.data); } catch (e) { /* keep the empty object */ }
    // Our last id is unknown to the server (its memory store restarted): its ids start over, so ids seen
    // before say nothing about the events coming now.
    if (info.first_available === null || info.first_available === undefined ||
        !idBefore(info.last_event_id, info.first_available)) {
      state.seen.clear();
      state.seenOrder.length = 0;
    }
    notice(`Some events were no longer kept by the server (after ${info.last_event_id ?? "?"}, ` +
      `history starts at ${info.first_available ?? "?"}); final results are loaded from the API.`, "warn");
    for (const run of state.runs.values()) if (!run.done) refreshRun(run.id);
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    let url = "/events";
    // EventSource resends Last-Event-ID on its own reconnects; a fresh EventSource needs it in the query.
    if (state.lastEventId) url += `?last_event_id=${encodeURIComponent(state.lastEventId)}`;
    setConn(state.stats.opens ? "reconnecting" : "connecting");
    source = new EventSource(url);
    source.onopen = () => {
      state.stats.opens++;
      backoffMs = 500;
      setConn("live");
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a 4xx or the server was down): retry ourselves from the last id we have.
        setConn("offline", "offline — retrying");
        retryTimer = setTimeout(connect, backoffMs);
        backoffMs = Math.min(backoffMs * 2, 10000);
      } else {
        setConn("reconnecting");
      }
    };
    for (const type of meta.event_types) source.addEventListener(type, onEvent);
    source.addEventListener("message", onEvent);
    source.addEventListener("gap", onGap);
  }

  // ---- the HTTP API --------------------------------------------------------------------------------------------

  async function api(method, path, body) {
    // X-LLMMixer: the server refuses writes without it or a JSON body, so a cross-site form cannot post.
    const init = { method, headers: { Accept: "application/json", "X-LLMMixer": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      const err = (payload && payload.error) || { kind: "server", message: `HTTP ${response.status}` };
      throw Object.assign(new Error(err.message), { kind: err.kind, status: response.status });
    }
    return payload;
  }

  async function refreshRun(runId) {
    try {
      const result = await api("GET", `/api/runs/${encodeURIComponent(runId)}`);
      const run = runFor(runId);
      if (!result) return;
      run.kind = run.kind || result.kind || null;
      run.prompt = run.prompt || result.prompt || result.command || null;
      run.mode = run.mode || result.mode || null;
      run.conversationId = run.conversationId || result.conversation_id || null;
      for (const m of result.models || []) legFor(run, m);
      if (result.legs) mergeResult(run, result);
      else if (result.kind === "command" || result.status !== "running") run.result = result;
      if (result.exit_code !== undefined && result.exit_code !== null) run.exit = result.exit_code;
      if (run.kind === "command" && typeof result.output === "string" && !run.terminalChunks.length) {
        run.terminalChunks.push(result.output);
      }
      run.status = result.status || run.status;
      run.done = !["pending", "running"].includes(result.status);
      if (state.current === runId) renderRun(run);
    } catch (e) {
      notice(`Could not load run ${runId}: ${e.message}`, "error");
    }
  }

  let historyTimer = null;
  function scheduleHistory() {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(loadHistory, 200);
  }

  async function loadHistory() {
    let payload;
    try {
      payload = await api("GET", "/api/runs?limit=50");
    } catch (e) {
      return;
    }
    if (window.LLMMixerSpend) window.LLMMixerSpend.refresh();
    const list = $("#history");
    list.textContent = "";
    for (const item of payload.runs || []) {
      const id = item.run_id || item.id;
      const li = document.createElement("li");
      li.dataset.run = id;
      li.classList.toggle("selected", id === state.current);
      const title = document.createElement("span");
      title.className = "title";
      const known = state.runs.get(id);
      title.textContent = item.prompt || item.command || item.task || (known && known.prompt) || id;
      const meta = document.createElement("span");
      meta.className = "meta";
      const bits = [item.kind === "command" ? "terminal" : item.mode, item.status, item.winner && `won by ${item.winner}`];
      if (typeof item.total_cost_usd === "number") bits.push(fmtCost(item.total_cost_usd));
      meta.textContent = bits.filter(Boolean).join(" · ");
      li.append(title, meta);
      li.dataset.status = item.status || "";
      li.addEventListener("click", () => {
        const run = runFor(id);
        if (!run.prompt) run.prompt = item.prompt || item.command || null;
        if (!run.conversationId) run.conversationId = item.conversation_id || null;
        if (!run.models && Array.isArray(item.models)) run.models = item.models;
        show(id);
        if (!run.sawStart && ((!run.done && item.status === "running") || item.kind === "agent")) {
          // Still streaming, or an agent run (its cards come from its events): every event from its first.
          replayRun(id);
          show(id);
        } else if (!run.done || !run.result) {
          // A finished run this page did not watch (a reload, another process): its result from the run log.
          refreshRun(id);
        }
      });
      list.appendChild(li);
    }
  }

  async function loadMeta() {
    try {
      Object.assign(meta, await api("GET", "/api/meta"));
      if (window.LLMMixerTimeline) window.LLMMixerTimeline.configure(meta);
    } catch (e) {
      notice(`Could not load /api/meta (${e.message}): live events are not shown`, "error");
    }
    const select = $("#mode");
    select.textContent = "";
    for (const mode of meta.modes) {
      const option = document.createElement("option");
      option.value = mode.name;
      option.textContent = `${mode.name} — ${mode.help}`;
      option.selected = mode.name === meta.default_mode;
      select.appendChild(option);
    }
  }

  const isModel = (server) => server.role !== "runner";

  // The model servers and their state; polled while any is still starting (the server starts them eagerly).
  let modelPolls = 0;
  async function loadModels() {
    let servers = meta.servers.filter(isModel).map((s) => ({ name: s.name, status: "starting" }));
    try {
      const payload = await api("GET", "/api/servers?wait=0");
      const adapters = (payload.servers || []).filter(isModel);
      if (adapters.length) servers = adapters;
    } catch (e) { /* keep the registered ones */ }
    const box = $("#models");
    const checked = new Map([...box.querySelectorAll("input")].map((i) => [i.value, i.checked]));
    for (const old of box.querySelectorAll("label")) old.remove();
    for (const server of servers) {
      const label = document.createElement("label");
      label.dataset.status = server.status || "";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "model";
      input.value = server.name;
      input.checked = checked.has(server.name) ? checked.get(server.name) : true;
      const state = document.createElement("span");
      state.className = "server-state";
      state.textContent = { ready: "", idle: " (idle)", starting: " (starting…)", dead: " (down)" }[server.status] ??
        ` (${server.status})`;
      label.append(input, document.createTextNode(` ${server.name}`), state);
      if (window.LLMMixerModelPicks) window.LLMMixerModelPicks.add(label, server.name);
      if (server.cooling_until) {
        const note = document.createElement("small");
        note.className = "cooling";
        note.textContent = ` cooling down until ${server.cooling_until} (${server.cooldown_reason})`;
        label.title = note.textContent;
        label.appendChild(note);
      }
      box.appendChild(label);
    }
    if (servers.some((s) => ["idle", "starting"].includes(s.status)) && modelPolls++ < 120) {
      setTimeout(loadModels, 500);
    }
  }

  async function startAsk(event) {
    event.preventDefault();
    const prompt = $("#prompt").value.trim();
    if (!prompt) return;
    const models = [...document.querySelectorAll("#models input:checked")].map((i) => i.value);
    const body = { prompt, mode: $("#mode").value };
    if (models.length) body.models = models;
    const modelFor = window.LLMMixerModelPicks ? window.LLMMixerModelPicks.choices(models) : {};
    if (Object.keys(modelFor).length) body.model_for = modelFor;
    const system = $("#system").value.trim();
    if (system) body.system = system;
    await submitAsk(body, $("#run"));
  }

  async function submitAsk(body, button) {
    button.disabled = true;
    notice("");
    try {
      const { run_id: runId, conversation_id: conversationId } = await api("POST", "/api/runs", body);
      const run = runFor(runId);
      run.kind = run.kind || "ask";
      run.prompt = run.prompt || body.prompt;
      run.mode = run.mode || body.mode;
      run.conversationId = run.conversationId || conversationId || null;
      for (const m of body.models || []) legFor(run, m);
      show(runId);
      scheduleHistory();
      // On a small window the results are above the forms: bring them into view.
      if (window.matchMedia("(max-width: 900px)").matches) $(".output").scrollIntoView({ block: "start" });
      return true;
    } catch (e) {
      notice(`${e.kind || "error"}: ${e.message}`, "error");
      return false;
    } finally {
      button.disabled = false;
    }
  }

  async function continueConversation(event) {
    event.preventDefault();
    const run = state.current && state.runs.get(state.current);
    const prompt = $("#follow-up-prompt").value.trim();
    if (!run || !run.conversationId || !prompt) return;
    if (await submitAsk(followUpRequest(run, prompt), $("#follow-up-run"))) $("#follow-up-prompt").value = "";
  }

  async function startCommand(event) {
    event.preventDefault();
    const command = $("#command").value.trim();
    if (!command) return;
    notice("");
    try {
      const { run_id: runId } = await api("POST", "/api/commands", { command });
      const run = runFor(runId);
      run.kind = "command";
      run.prompt = command;
      show(runId);
      scheduleHistory();
    } catch (e) {
      notice(`${e.kind || "error"}: ${e.message}`, "error");
    }
  }

  async function startAgents(event) {
    event.preventDefault();
    const task = $("#agent-task").value.trim();
    const check = $("#agent-check").value.trim();
    if (!task || !check) return;
    const body = { task, check, mode: $("#agent-all").checked ? "all" : "race" };
    const agents = $("#agent-names").value.trim();
    if (agents) body.agents = agents;
    notice("");
    try {
      const { run_id: runId } = await api("POST", "/api/agents", body);
      const run = runFor(runId);
      run.kind = "agent";
      run.prompt = task;
      show(runId);
      scheduleHistory();
    } catch (e) {
      notice(`${e.kind || "error"}: ${e.message}`, "error");
    }
  }

  async function cancelCurrent() {
    if (!state.current) return;
    try {
      await api("POST", `/api/runs/${encodeURIComponent(state.current)}/cancel`);
    } catch (e) {
      notice(`${e.kind || "error"}: ${e.message}`, "error");
    }
  }

  // ---- start ---------------------------------------------------------------------------------------------------

  window.llmmixer = { state, apply, show, connect, columnText: (s) => (state.runs.get(state.current)?.legs.get(s) || {}).text };

  document.addEventListener("DOMContentLoaded", () => {
    $("#ask-form").addEventListener("submit", startAsk);
    $("#command-form").addEventListener("submit", startCommand);
    $("#agent-form").addEventListener("submit", startAgents);
    $("#follow-up").addEventListener("submit", continueConversation);
    if (window.LLMMixerSpend) window.LLMMixerSpend.attach($("#spend"), api);
    $("#cancel").addEventListener("click", cancelCurrent);
    loadMeta().then(() => {
      connect();
      loadModels();
      if (window.LLMMixerModelPicks) window.LLMMixerModelPicks.attach(api);
    });
    loadHistory();
  });
})();

// Coding-agent runs on the dashboard, made for review.
//
// Each agent's column holds cards for what it did, from its agent.* events: what it said, each tool call (a shell
// command with its exit code), its setup and check commands, the files it changed, how its CLI exited. Its raw
// terminal output stays one click away. Once the run has ended, a review section under the columns shows the judge's
// verdict (--pick best) and every candidate: its check output and its diff side by side (diff2html, vendored under
// /static, loaded the first time a diff is shown), with Apply and Keep buttons (POST /api/agents/RUN/AGENT/apply|keep).
// app.js hands agent.* events to apply() and calls render() for each column of an agent run.
"use strict";

(function (global) {
  const CARD_LIMIT = 300;
  const DIFF_LIMIT = 400000; // characters: a larger diff is left to `llmmixer agent show`
  const SHELL_TOOLS = new Set(["Bash", "exec_command", "run_shell_command"]);

  // ---- events → cards ------------------------------------------------------------------------------------------

  function push(leg, card) {
    leg.cards.push(card);
    if (leg.cards.length > CARD_LIMIT) leg.cards.shift();
    return card;
  }

  function last(leg, kind) {
    for (let i = leg.cards.length - 1; i >= 0; i--) if (leg.cards[i].kind === kind) return leg.cards[i];
    return null;
  }

  function apply(run, leg, ev) {
    const d = ev.data || {};
    leg.agentChunks = leg.agentChunks || [];
    leg.cards = leg.cards || [];
    leg.files = leg.files || [];
    leg.cardsVersion = (leg.cardsVersion || 0) + 1;
    switch (ev.type) {
      case "agent.output":
        leg.agentChunks.push(d.text || "");
        leg.cardsVersion -= 1; // the terminal, not the cards
        break;
      case "agent.text": {
        const prev = leg.cards[leg.cards.length - 1];
        if (d.delta && prev && prev.kind === "text" && prev.delta) prev.text += d.text || "";
        else push(leg, { kind: "text", text: d.text || "", delta: !!d.delta });
        break;
      }
      case "agent.tool_call":
        push(leg, { kind: "tool", tool: d.tool, id: d.id, input: d.input, command: null, result: null });
        break;
      case "agent.command":
        if (d.phase === "setup") {
          if (d.status === "started") push(leg, { kind: "setup", command: d.command, result: null });
          else { const card = last(leg, "setup"); if (card) card.result = d; }
        } else {
          const tool = leg.cards[leg.cards.length - 1];
          if (tool && tool.kind === "tool" && tool.command === null) tool.command = d.command;
          else push(leg, { kind: "tool", tool: "shell", id: null, input: null, command: d.command, result: null });
        }
        break;
      case "agent.tool_result": {
        const card = leg.cards.find((c) => c.kind === "tool" && c.id !== null && c.id === d.id);
        if (card) card.result = d;
        break;
      }
      case "agent.file_changed":
        if (d.path && !leg.files.includes(d.path)) leg.files.push(d.path);
        break;
      case "agent.check":
        if (d.phase === "judging") leg.status = "running"; // the judge's own column (source "judge")
        if (d.phase === "done") { const card = last(leg, "check"); if (card) card.result = d; }
        else push(leg, { kind: "check", command: d.command, phase: d.phase, candidates: d.candidates,
                         judge: d.judge, result: null });
        break;
      case "agent.exit":
        push(leg, { kind: "exit", exit_code: d.exit_code, timed_out: d.timed_out, error: d.error });
        break;
      default:
        leg.cardsVersion -= 1;
        break;
    }
    return {};
  }

  // ---- small DOM helpers ---------------------------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function exitBadge(code, timedOut, passed) {
    if (timedOut) return el("span", "exit bad", "timed out");
    if (code === null || code === undefined) return el("span", "exit pending", "…");
    const ok = passed === undefined ? code === 0 : passed;
    return el("span", `exit ${ok ? "ok" : "bad"}`, `exit ${code}`);
  }

  function inputSummary(input) {
    if (input === null || input === undefined) return "";
    if (typeof input === "string") return input;
    const path = input.file_path || input.path;
    if (path) return path;
    try { return JSON.stringify(input); } catch (e) { return ""; }
  }

  function cardNode(card) {
    const li = el("li", `card card-${card.kind}`);
    li.dataset.kind = card.kind;
    switch (card.kind) {
      case "text":
        li.append(el("span", "card-label", "says"), el("p", "card-text", card.text));
        break;
      case "tool": {
        const shell = card.command !== null || SHELL_TOOLS.has(card.tool);
        li.dataset.kind = shell ? "command" : "tool";
        li.append(el("span", "card-label", shell ? "runs" : card.tool));
        if (shell) li.append(el("code", "card-command", `$ ${card.command ?? inputSummary(card.input)}`));
        else li.append(el("code", "card-input", inputSummary(card.input)));
        const r = card.result;
        if (r) {
          if (r.exit_code !== undefined && r.exit_code !== null) li.append(exitBadge(r.exit_code));
          else li.append(el("span", `exit ${r.is_error ? "bad" : "ok"}`, r.is_error ? "failed" : "ok"));
          if (r.output) {
            const out = el("details", "card-output");
            out.append(el("summary", null, "output"), el("pre", null, r.output));
            li.append(out);
          }
        }
        break;
      }
      case "setup":
      case "check": {
        if (card.phase === "judging") {
          li.append(el("span", "card-label", "judge"),
                    el("p", "card-text", `${card.judge || "the judge"} ranks ${(card.candidates || []).join(", ")}`));
          break;
        }
        li.append(el("span", "card-label", card.kind), el("code", "card-command", `$ ${card.command}`));
        const r = card.result;
        li.append(r ? exitBadge(r.exit_code, r.timed_out, card.kind === "check" ? !!r.passed : undefined)
          : exitBadge(null));
        if (r && r.output_tail) {
          const out = el("details", "card-output");
          out.append(el("summary", null, "output"), el("pre", null, r.output_tail));
          li.append(out);
        }
        break;
      }
      case "exit":
        li.append(el("span", "card-label", "exited"), exitBadge(card.exit_code, card.timed_out));
        if (card.error) li.append(el("p", "card-text", card.error));
        break;
      default:
        break;
    }
    return li;
  }

  // ---- a column: cards, files changed, the raw terminal --------------------------------------------------------

  function render(col, leg, run) {
    ensureStyles();
    let cards = col.querySelector(".agent-cards");
    if (!cards) {
      cards = el("ol", "agent-cards");
      const files = el("div", "agent-files");
      const raw = el("details", "agent-raw");
      raw.append(el("summary", null, "terminal output"));
      const pane = el("pre", "terminal agent-terminal");
      raw.append(pane);
      col.querySelector(".text").after(cards, files, raw);
      col._terminal = new global.LLMMixerAnsi.AnsiTerminal(pane);
      col._written = 0;
    }
    const chunks = leg.agentChunks || [];
    if (col._written > chunks.length) {
      col._terminal.reset();
      col._written = 0;
    }
    for (; col._written < chunks.length; col._written++) col._terminal.write(chunks[col._written]);
    if (col._cardsVersion !== leg.cardsVersion) {
      col._cardsVersion = leg.cardsVersion;
      cards.replaceChildren(...(leg.cards || []).map(cardNode));
      cards.scrollTop = cards.scrollHeight;
    }
    const result = run && run.result && Array.isArray(run.result.legs)
      ? run.result.legs.find((l) => l && l.agent === leg.source) : null;
    const files = (result && result.files_changed) || leg.files || [];
    const filesBox = col.querySelector(".agent-files");
    if (filesBox.dataset.files !== files.join("\n")) {
      filesBox.dataset.files = files.join("\n");
      filesBox.replaceChildren(...(files.length ? [el("span", "card-label", "files changed"),
        ...files.map((f) => el("code", "file", f))] : []));
    }
    if (run && run.done && leg.source === "judge" && leg.status === "running") {
      // The judge has no leg of its own in the result: its verdict ends it.
      const failed = run.result && run.result.verdict && run.result.verdict.error;
      leg.status = failed ? "error" : "done";
      const badge = col.querySelector(".badge");
      badge.dataset.status = leg.status;
      badge.textContent = leg.status;
      col.dataset.status = leg.status;
    }
    if (run) renderReview(run);
  }

  // ---- the review section: verdict, and each candidate's check, diff and buttons ------------------------------

  let diff2html = null;

  function loadDiff2Html() {
    if (diff2html) return diff2html;
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/diff2html.min.css";
    document.head.appendChild(css);
    diff2html = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/diff2html.min.js";
      script.onload = () => resolve(global.Diff2Html);
      script.onerror = () => reject(new Error("could not load /static/diff2html.min.js"));
      document.head.appendChild(script);
    });
    return diff2html;
  }

  function ensureStyles() {
    if (document.querySelector('link[href="/static/agents.css"]')) return;
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/agents.css";
    document.head.appendChild(css);
  }

  // The section is the last item of #columns (spanning its width), so it goes when app.js clears the columns.
  function reviewSection() {
    const columns = document.getElementById("columns");
    let section = document.getElementById("agent-review");
    if (!section) {
      section = el("section", "agent-review");
      section.id = "agent-review";
    }
    if (columns.lastElementChild !== section) columns.appendChild(section);
    return section;
  }

  function renderReview(run) {
    const result = run.result;
    if (!run.done || !result || !Array.isArray(result.legs)) return;
    const legs = result.legs.filter((l) => l && l.agent && (l.diff !== null && l.diff !== undefined || l.check));
    if (!legs.length) return;
    const section = reviewSection();
    if (section.dataset.run === run.id) return; // one render per finished run
    section.dataset.run = run.id;
    section.replaceChildren(el("h2", null, "Review"));
    if (result.verdict) section.append(verdictNode(result.verdict));
    for (const leg of legs) section.append(candidateNode(run, result, leg));
  }

  function verdictNode(verdict) {
    const box = el("div", "verdict");
    box.append(el("span", "card-label", "judge's verdict"));
    const head = el("p", "verdict-winner");
    head.append("winner ", el("strong", null, verdict.winner || "–"));
    if (verdict.judge) head.append(el("span", "muted", ` · judged by ${verdict.judge}`));
    box.append(head);
    if (verdict.error) box.append(el("p", "verdict-error", `the judge failed (${verdict.error.kind}): ` +
      `${verdict.error.message}; the first to pass wins`));
    const scores = verdict.scores || {};
    const names = Object.keys(scores).sort((a, b) => scores[b] - scores[a]);
    if (names.length) {
      const table = el("table", "verdict-scores");
      for (const name of names) {
        const row = el("tr");
        row.dataset.agent = name;
        const bar = el("span", "score-bar");
        bar.style.width = `${Math.max(0, Math.min(10, Number(scores[name]) || 0)) * 10}%`;
        const barCell = el("td", "score-cell");
        barCell.append(bar);
        row.append(el("th", null, name), el("td", "score", String(scores[name])), barCell);
        table.append(row);
      }
      box.append(table);
    }
    if (verdict.reason) box.append(el("p", "verdict-reason", verdict.reason));
    const labels = Object.entries(verdict.labels || {});
    if (labels.length) {
      box.append(el("p", "muted", "the judge saw the candidates anonymized, as " +
        labels.map(([letter, agent]) => `${letter} = ${agent}`).join(", ") +
        (typeof verdict.cost_usd === "number" ? ` · judging cost $${verdict.cost_usd.toFixed(4)}` : "")));
    }
    return box;
  }

  function candidateNode(run, result, leg) {
    const box = el("article", "candidate");
    box.dataset.agent = leg.agent;
    box.dataset.status = leg.status || "";
    const head = el("header");
    const title = el("h3", null, leg.agent);
    const status = el("span", "badge", leg.status || "");
    status.dataset.status = leg.status || "";
    head.append(title, status);
    const kept = leg.kept || {};
    if (kept.insertions !== undefined) {
      head.append(el("span", "stat", `${(kept.files_changed || []).length} files `),
                  el("span", "stat plus", `+${kept.insertions}`), el("span", "stat minus", `−${kept.deletions}`));
    }
    box.append(head);
    if (leg.setup) box.append(commandBlock("setup", leg.setup, undefined));
    if (leg.check) box.append(commandBlock("check", leg.check, !!leg.check.passed));
    const diffBox = el("div", "candidate-diff");
    box.append(diffBox);
    const diff = leg.diff || "";
    if (!diff.trim()) {
      diffBox.append(el("p", "muted", "no changes"));
    } else if (diff.length > DIFF_LIMIT) {
      diffBox.append(el("p", "muted", `the diff is ${diff.length} characters: see it with ` +
        `llmmixer agent show ${run.id} ${leg.agent}`));
    } else {
      diffBox.append(el("p", "muted", "loading the diff…"));
      loadDiff2Html().then((D2H) => {
        diffBox.innerHTML = D2H.html(diff, { outputFormat: "side-by-side", drawFileList: true, matching: "lines",
                                             colorScheme: "dark", diffMaxChanges: 5000 });
      }).catch((error) => { diffBox.replaceChildren(el("pre", "error", String(error.message || error))); });
    }
    if (kept.commit) box.append(actionsNode(run, leg, kept));
    return box;
  }

  function commandBlock(label, outcome, passed) {
    const block = el("details", `candidate-${label}`);
    block.open = label === "check" && passed === false;
    const summary = el("summary");
    summary.append(el("span", "card-label", label), el("code", "card-command", `$ ${outcome.command || ""}`),
                   exitBadge(outcome.exit_code, outcome.timed_out, passed));
    block.append(summary, el("pre", "check-output", outcome.output_tail || (outcome.error && outcome.error.message)
      || "(no output)"));
    return block;
  }

  async function post(path) {
    const response = await fetch(path, { method: "POST", credentials: "same-origin",
                                         headers: { Accept: "application/json", "X-LLMMixer": "1" } });
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      const err = (payload && payload.error) || { kind: "server", message: `HTTP ${response.status}` };
      throw Object.assign(new Error(err.message), { kind: err.kind, details: err.details || {} });
    }
    return payload;
  }

  function actionsNode(run, leg, kept) {
    const bar = el("div", "candidate-actions");
    const apply = el("button", "apply", "Apply");
    apply.type = "button";
    apply.title = `apply this diff to ${run.result.repo || "the repository"} (as llmmixer agent apply does)`;
    const keep = el("button", "keep", kept.branch ? "Kept" : "Keep");
    keep.type = "button";
    keep.disabled = !!kept.branch;
    keep.title = "keep this leg as its branch, to show, apply or continue later";
    const note = el("span", "action-note", kept.branch ? `branch ${kept.branch}` : "not kept: its branch was " +
      "not made (--keep)");
    note.setAttribute("role", "status");
    const path = `/api/agents/${encodeURIComponent(run.id)}/${encodeURIComponent(leg.agent)}`;
    const act = async (button, what, done) => {
      button.disabled = true;
      note.dataset.state = "busy";
      try {
        done(await post(`${path}/${what}`));
        note.dataset.state = "ok";
      } catch (error) {
        note.dataset.state = "error";
        const conflicts = (error.details && error.details.conflicts) || [];
        note.textContent = `${error.kind || "error"}: ${error.message}` +
          (conflicts.length ? ` (${conflicts.join(", ")})` : "");
        if (what === "keep" || error.kind !== "conflict") button.disabled = false;
      }
    };
    apply.addEventListener("click", () => act(apply, "apply", (out) => {
      apply.textContent = "Applied";
      keep.textContent = "Kept";
      keep.disabled = true;
      note.textContent = `applied ${out.branch} to ${out.repo}`;
    }));
    keep.addEventListener("click", () => act(keep, "keep", (out) => {
      keep.textContent = "Kept";
      note.textContent = `branch ${out.branch}`;
    }));
    if (run.result.applied && run.result.winner === leg.agent) {
      apply.textContent = "Applied";
      apply.disabled = true;
      note.textContent = "applied by the run (--apply)";
    }
    bar.append(apply, keep, note);
    return bar;
  }

  global.LLMMixerAgents = { apply, render };
})(window);

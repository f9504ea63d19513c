// Coding-agent runs on the dashboard: one terminal pane per agent (its CLI's raw output, ANSI rendered), and a
// line per thing it did (commands run, files changed, its check). app.js hands agent.* events here.
"use strict";

(function (global) {
  const LINE_LIMIT = 200;

  function apply(run, leg, ev) {
    const d = ev.data || {};
    leg.agentChunks = leg.agentChunks || [];
    leg.agentLines = leg.agentLines || [];
    let line = null;
    switch (ev.type) {
      case "agent.output":
        leg.agentChunks.push(d.text || "");
        return { terminal: d.text || "" };
      case "agent.command": line = `$ ${d.command}`; break;
      case "agent.file_changed": line = `changed ${d.path}`; break;
      case "agent.check":
        if (d.phase === "done") line = d.passed ? "check passed" : `check failed (exit ${d.exit_code})`;
        break;
      case "agent.exit": line = `exited ${d.exit_code}${d.timed_out ? " (timed out)" : ""}`; break;
      case "agent.text": if (!d.delta) leg.text = d.text || leg.text; break;
      default: break;
    }
    if (line) {
      leg.agentLines.push(line);
      if (leg.agentLines.length > LINE_LIMIT) leg.agentLines.shift();
    }
    return { line };
  }

  // Called for each column of an agent run: keeps one AnsiTerminal per column, fed with the new chunks only.
  function render(col, leg) {
    let pane = col.querySelector(".agent-terminal");
    if (!pane) {
      pane = document.createElement("pre");
      pane.className = "terminal agent-terminal";
      const actions = document.createElement("ol");
      actions.className = "agent-actions";
      col.querySelector(".text").after(actions, pane);
      col._terminal = new global.LLMMixerAnsi.AnsiTerminal(pane);
      col._written = 0;
    }
    const chunks = leg.agentChunks || [];
    if (col._written > chunks.length) {
      col._terminal.reset();
      col._written = 0;
    }
    for (; col._written < chunks.length; col._written++) col._terminal.write(chunks[col._written]);
    pane.scrollTop = pane.scrollHeight;
    const actions = col.querySelector(".agent-actions");
    const lines = leg.agentLines || [];
    if (actions.childElementCount !== lines.length) {
      actions.textContent = "";
      for (const text of lines) {
        const li = document.createElement("li");
        li.textContent = text;
        actions.appendChild(li);
      }
    }
  }

  global.LLMMixerAgents = { apply, render };
})(window);

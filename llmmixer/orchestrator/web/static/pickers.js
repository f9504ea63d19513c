// The new-run form's model per server: a picker of each server's models beside its checkbox, the server's default
// preselected; the run asks for the models picked (`model_for`). The lists come from the model cache
// (GET /api/models?cached=1 asks no server); `llmmixer serve` lists its servers once they are warm, so while a
// server is known only by its manifest's default model, the cache is read again a little later.
"use strict";

(function () {
  let api = null;
  let lists = null;  // server -> its listing
  let reads = 0;
  const picked = new Map();  // server -> the model id picked

  async function load() {
    let listings = [];
    try {
      listings = (await api("GET", "/api/models?cached=1")).servers || [];
    } catch (e) { return; }
    lists = new Map(listings.filter((l) => !l.error && l.models && l.models.length).map((l) => [l.source, l]));
    for (const label of document.querySelectorAll("#models label")) add(label, label.querySelector("input").value);
    if (listings.some((l) => !l.listed_at) && reads++ < 20) setTimeout(load, 3000);
  }

  // The picker of `server` in its checkbox's label (again when its list has changed).
  function add(label, server) {
    const listing = lists && lists.get(server);
    if (!listing) return;
    const old = label.querySelector("select");
    if (old && old.options.length === listing.models.length) return;
    if (old) old.remove();
    const select = document.createElement("select");
    select.className = "model-pick";
    select.dataset.server = server;
    select.title = `the ${server} model to run`;
    for (const model of listing.models) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.id;
      option.selected = picked.has(server) ? picked.get(server) === model.id : model.default;
      select.appendChild(option);
    }
    select.addEventListener("change", () => picked.set(server, select.value));
    label.appendChild(select);
  }

  // {server: model id} for the servers given.
  function choices(servers) {
    const chosen = {};
    for (const server of servers) {
      const select = document.querySelector(`#models select[data-server="${CSS.escape(server)}"]`);
      if (select && select.value) chosen[server] = select.value;
    }
    return chosen;
  }

  function attach(apiCall) {
    api = apiCall;
    load();
  }

  window.LLMMixerModelPicks = { attach, add, choices };
})();

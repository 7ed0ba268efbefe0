// Platform's validator dashboard: plain JavaScript over the node's JSON API, live through the
// server-sent events of /api/v1/events. No framework, no external asset; every value is
// written with textContent, never parsed as HTML.
"use strict";

const state = {
  status: null,
  // Finalization p50/p99 samples for the overview chart: [height, p50, p99].
  latency: [],
  // Chain heads as seen, [ms since epoch, head], to estimate the chain's block time.
  heads: [],
  page: "overview",
  arg: "",
  // The height the current page's data was last fetched at.
  fetchedAt: -1,
  fetching: false,
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNs = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) {
    let why = r.statusText;
    try { why = (await r.json()).error || why; } catch (_) { /* not JSON */ }
    const e = new Error(why);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

function short(key) {
  return key && key.length > 14 ? key.slice(0, 6) + "…" + key.slice(-6) : key || "—";
}

function keyCell(key) {
  return h("td", { class: "key", title: key || "" }, short(key));
}

function card(label, value, id, cls) {
  return h("div", { class: "card" }, h("dl", {}, h("dt", {}, label),
    h("dd", { "data-testid": id, class: cls || null }, value)));
}

function table(caption, head, rows) {
  return h("div", { class: "table" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

function setMain(page, ...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
  document.body.dataset.page = page;
  document.body.dataset.height = state.status ? state.status.height : "";
}

// ---- The bar shown on every page ----------------------------------------------------------

function renderBar() {
  const st = state.status;
  const bar = document.getElementById("bar");
  if (!st) return;
  bar.replaceChildren(
    `height ${st.height} · epoch ${st.epoch} · view ${st.view} · ${st.peers} peers · `,
    st.partitioned ? h("span", { class: "alarm" }, "PARTITIONED") : h("span", { class: "ok" }, "connected"),
  );
  bar.dataset.height = st.height;
}

// ---- Overview -----------------------------------------------------------------------------

function latencyChart() {
  const pts = state.latency;
  const w = 600, hgt = 160, pad = 28;
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": "Finalization latency p50 and p99 over recent heights", "data-testid": "latency-chart" });
  if (pts.length < 2) {
    svg.append(s("text", { x: pad, y: hgt / 2 }, "collecting samples…"));
    return svg;
  }
  const max = Math.max(1, ...pts.map((p) => p[2]));
  const x = (i) => pad + (i * (w - 2 * pad)) / (pts.length - 1);
  const y = (v) => hgt - pad - (v * (hgt - 2 * pad)) / max;
  for (const [k, cls] of [[1, "p50"], [2, "p99"]]) {
    svg.append(s("polyline", { class: cls, fill: "none", "stroke-width": 2, points: pts.map((p, i) => `${x(i)},${y(p[k])}`).join(" ") }));
  }
  svg.append(s("text", { x: 2, y: pad }, `${max} ms`), s("text", { x: 2, y: hgt - pad }, "0"),
    s("text", { x: pad, y: hgt - 6 }, `height ${pts[0][0]}`), s("text", { x: w - pad - 70, y: hgt - 6 }, `height ${pts[pts.length - 1][0]}`),
    s("text", { x: w / 2 - 60, y: 12 }, "— p50   — p99 (ms)"));
  return svg;
}

function renderOverview() {
  const st = state.status;
  if (!st) return;
  const chain = st.chain;
  let close = "—";
  if (chain && chain.latest_epoch_start !== null && chain.tempo) {
    const next = chain.latest_epoch_start + chain.tempo + 1;
    const blocks = Math.max(0, next - chain.head);
    close = `${blocks} chain blocks`;
    // The chain's block time as observed here, once it has moved by a few blocks.
    const [first, last] = [state.heads[0], state.heads[state.heads.length - 1]];
    if (first && last && last[1] - first[1] >= 3) {
      const msPerBlock = (last[0] - first[0]) / (last[1] - first[1]);
      close += ` (≈ ${Math.round((blocks * msPerBlock) / 1000)} s)`;
    }
  }
  setMain("overview",
    h("h2", {}, "Network"),
    h("div", { class: "cards" },
      card("Finalized height", st.height, "height"),
      card("Epoch", st.epoch, "epoch"),
      card("Epoch closes in", close, "epoch-close"),
      card("View", st.view, "view"),
      card("Leader", short(st.leader), "leader"),
      card("Peers", st.peers, "peers"),
      card("Stake heard (10 s)", `${(st.heard_stake_bps / 100).toFixed(1)} %`, "heard"),
      card("Partition alarm", st.partitioned ? "RAISED" : "clear", "partitioned", st.partitioned ? "bad" : "ok"),
      card("Finalization p50", `${st.finalization_ms_p50} ms`, "p50"),
      card("Finalization p99", `${st.finalization_ms_p99} ms`, "p99"),
      card("Chain head", chain ? chain.head : "no chain", "chain-head"),
      card("Epoch anchored at", chain ? `block ${st.epoch_chain_block} (${Math.max(0, chain.head - st.epoch_chain_block)} ago)` : "—", "chain-lag"),
      card("Pending transactions", st.pending_transactions, "mempool"),
      card("Weights submitted", st.weights_submitted_epoch === null ? "not yet" : `epoch ${st.weights_submitted_epoch}`, "weights-submitted"),
    ),
    h("h2", {}, "Finalization latency"),
    latencyChart(),
    h("h2", {}, "This validator"),
    h("div", { class: "cards" },
      card("Hotkey", short(st.hotkey), "hotkey"),
      card("Votes", st.validator ? "yes" : "no (not in the set)", "votes"),
      card("Evaluations", `${st.evaluations} (${st.evaluations ? Math.round(st.evaluation_ms / st.evaluations) : 0} ms each)`, "evaluations"),
      card("State entries", st.state_entries, "state-entries"),
      card("Newest snapshot", st.snapshot_height === null ? "none" : `height ${st.snapshot_height}`, "snapshot"),
    ));
}

// ---- Validators ---------------------------------------------------------------------------

async function renderValidators() {
  const [validators, weights] = await Promise.all([
    api("/api/v1/validators"),
    lastWeights(),
  ]);
  const total = validators.reduce((a, v) => a + v.stake, 0) || 1;
  const rows = validators.map((v) => h("tr", { "data-testid": "validator-row", "data-hotkey": v.hotkey },
    keyCell(v.hotkey),
    h("td", {}, v.stake.toLocaleString("en")),
    h("td", {}, `${((100 * v.stake) / total).toFixed(1)} %`),
    h("td", { class: v.bls_key ? "ok" : "bad" }, v.bls_key ? "bound" : "not bound"),
    keyCell(v.peer_id),
    h("td", { class: v.jailed_until === null ? "" : "bad" }, v.jailed_until === null ? "no" : `until epoch ${v.jailed_until}`),
    h("td", {}, v.silent_ms === null ? "—" : v.silent_ms < 1000 ? "just now" : `${Math.round(v.silent_ms / 1000)} s ago`),
    h("td", {}, chainRow(weights, v.hotkey))));
  setMain("validators", h("h2", {}, "Validators of this epoch"),
    table("Stake, keys bound in the state, jail, when this node last heard a message of theirs, and the weights the chain holds from them.",
      ["Hotkey", "Stake", "Share", "BLS key", "Peer", "Jailed", "Last heard", "Weights on chain"], rows));
}

function chainRow(weights, hotkey) {
  if (!weights || !weights.chain) return "—";
  const row = weights.chain.validators.find((r) => r.hotkey === hotkey);
  if (!row) return "none";
  const when = row.last_update == null ? "" : `, set in block ${row.last_update}`;
  return (sameWeights(row, weights.finalized) ? `identical to epoch ${weights.finalized.epoch}` : "differs") + when;
}

// The chain stores weights max-upscaled (largest 65535); the network's vector sums to 65535.
// Two vectors are the same when their normalized shares agree within rounding.
function sameWeights(chainRow, finalized) {
  if (!finalized) return false;
  const share = (uids, ws) => {
    const sum = ws.reduce((a, b) => a + b, 0) || 1;
    const m = new Map();
    uids.forEach((u, i) => { if (ws[i] > 0) m.set(u, ws[i] / sum); });
    return m;
  };
  const a = share(chainRow.uids, chainRow.weights), b = share(finalized.uids, finalized.weights);
  if (a.size !== b.size) return false;
  for (const [u, v] of a) if (!b.has(u) || Math.abs(b.get(u) - v) > 0.001) return false;
  return true;
}

// The newest closed epoch's weights, and what the chain holds (null without a chain).
async function lastWeights() {
  const st = state.status;
  let finalized = null;
  for (let e = st ? st.epoch : 0; e >= 0 && e + 5 > (st ? st.epoch : 0); e--) {
    try { finalized = await api(`/api/v1/epochs/${e}/weights`); break; } catch (_) { /* not closed */ }
  }
  let chain = null;
  try { chain = await api("/api/v1/chain/weights"); } catch (_) { /* no chain */ }
  return { finalized, chain };
}

// ---- Challenges ---------------------------------------------------------------------------

async function renderChallenges() {
  const [challenges, params] = await Promise.all([api("/api/v1/challenges"), api("/api/v1/params")]);
  const rows = challenges.map((c) => h("tr", { "data-testid": "challenge-row", "data-id": c.id },
    h("td", {}, h("a", { href: `#leaderboard/${c.id}` }, c.id)),
    h("td", {}, c.name),
    h("td", {}, c.version),
    keyCell(c.wasm_hash),
    h("td", {}, c.lifecycle),
    h("td", {}, `${(c.emission_bps / 100).toFixed(2)} %`),
    h("td", {}, c.committee_size === null ? `default (${params.committee_size})` : c.committee_size),
    h("td", {}, Number(c.resources.fuel).toLocaleString("en")),
    h("td", {}, `${c.resources.max_memory_pages * 64} KiB`),
    h("td", {}, `${c.resources.max_payload_bytes} B`),
    h("td", { class: "key", title: c.leader ? c.leader.miner : "" }, c.leader ? `${short(c.leader.miner)} (${c.leader.score})` : "—")));
  setMain("challenges", h("h2", {}, "Challenges"),
    table("Each challenge's module, lifecycle, share of emission, committee and limits; the name opens its leaderboard.",
      ["Id", "Name", "Version", "Module", "Status", "Emission", "Committee", "Fuel", "Memory", "Payload", "Leader"], rows));
}

// ---- Leaderboard --------------------------------------------------------------------------

async function renderLeaderboard(id) {
  const challenges = await api("/api/v1/challenges");
  if (!id && challenges.length) id = challenges[0].id;
  const picker = h("select", { "aria-label": "Challenge", onchange: (e) => { location.hash = `leaderboard/${e.target.value}`; } },
    challenges.map((c) => h("option", { value: c.id, selected: c.id === id ? "" : null }, `${c.name} (${c.id})`)));
  if (!id) {
    setMain("leaderboard", h("h2", {}, "Leaderboard"), h("p", {}, "No challenge is published yet."));
    return;
  }
  const rows = await api(`/api/v1/challenges/${encodeURIComponent(id)}/leaderboard`);
  const body = rows.map((r) => h("tr", { "data-testid": "leaderboard-row", "data-miner": r.miner },
    h("td", {}, r.rank),
    keyCell(r.miner),
    h("td", {}, r.uid === null ? "—" : r.uid),
    h("td", { "data-testid": "score" }, r.score),
    h("td", {}, r.submissions_this_epoch),
    h("td", {}, r.certified_height === null ? "—" : `height ${r.certified_height}`),
    h("td", {}, h("a", { href: `#submission/${r.submission}`, "aria-label": `Submission ${r.submission}` }, short(r.submission)))));
  setMain("leaderboard", h("h2", {}, "Leaderboard "), picker,
    rows.length ? table("Miners by best certified score; a submission opens its detail.",
      ["#", "Miner", "UID", "Best score", "Submissions this epoch", "Certified", "Submission"], body)
      : h("p", {}, "No certified score yet."));
  document.body.dataset.challenge = id;
}

// ---- Submission ---------------------------------------------------------------------------

async function renderSubmission(id) {
  const r = await api(`/api/v1/submissions/${encodeURIComponent(id)}`);
  const list = (keys) => (keys && keys.length ? keys.map(short).join(", ") : "—");
  const timeline = [
    ["ordered", r.ordered_height == null ? "in the mempool" : `height ${r.ordered_height} (epoch ${r.epoch})`],
    ["attested", `${r.attestations.length} of ${r.committee.length} members`],
    ["deadline", r.deadline == null ? "—" : `height ${r.deadline}`],
    [r.status, r.settled_height == null ? "—" : `height ${r.settled_height}`],
  ];
  setMain("submission", h("h2", {}, "Submission"),
    h("div", { class: "cards" },
      card("Status", r.status, "status", r.status === "certified" ? "ok" : r.status === "expired" ? "bad" : null),
      card("Score", r.score === null || r.score === undefined ? "—" : r.score, "score"),
      card("Challenge", r.challenge || "—", "challenge"),
      card("Miner", short(r.miner), "miner"),
      card("Receipt", r.receipt ? `${short(r.receipt.digest)} (${r.receipt.outcome})` : "—", "receipt")),
    h("h2", {}, "Committee"),
    table("Members drawn, those replaced at a deadline, and those whose signatures are in the certificate.",
      ["Committee", "Dropped", "Signers"], [h("tr", {}, h("td", {}, list(r.committee)), h("td", {}, list(r.dropped)), h("td", {}, list(r.signers)))]),
    h("h2", {}, "Timeline"),
    table("From admission to certificate, in finalized heights.", ["Step", "When"],
      timeline.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))));
}

// ---- Epochs -------------------------------------------------------------------------------

function weightChart(w) {
  const wd = 600, hgt = 180, pad = 24;
  const svg = s("svg", { viewBox: `0 0 ${wd} ${hgt}`, role: "img", "aria-label": `Weights of epoch ${w.epoch} by UID`, "data-testid": "weight-chart" });
  const max = Math.max(1, ...w.weights);
  const bw = (wd - 2 * pad) / Math.max(1, w.uids.length);
  w.uids.forEach((u, i) => {
    const bh = (w.weights[i] * (hgt - 2 * pad)) / max;
    svg.append(s("rect", { class: "bar", x: pad + i * bw + 1, y: hgt - pad - bh, width: Math.max(1, bw - 2), height: bh },
      s("title", {}, `UID ${u}: ${w.weights[i]}`)));
    if (w.uids.length <= 32) svg.append(s("text", { x: pad + i * bw + bw / 2 - 4, y: hgt - 8 }, u));
  });
  return svg;
}

async function renderEpochs() {
  const { finalized, chain } = await lastWeights();
  if (!finalized) {
    setMain("epochs", h("h2", {}, "Epochs"), h("p", {}, "No epoch has closed yet."));
    return;
  }
  const sum = finalized.weights.reduce((a, b) => a + b, 0) || 1;
  const mine = finalized.submitted;
  const validators = chain ? chain.validators.map((v) => h("tr", { "data-testid": "chain-row", "data-hotkey": v.hotkey },
    h("td", {}, v.uid), keyCell(v.hotkey), h("td", {}, v.uids.length),
    h("td", {}, v.last_update == null ? "—" : `block ${v.last_update}`),
    h("td", { class: sameWeights(v, finalized) ? "ok" : "bad" }, sameWeights(v, finalized) ? "identical" : "differs"))) : [];
  setMain("epochs", h("h2", {}, `Epoch ${finalized.epoch}`),
    h("p", { class: "note" }, `Anchored on chain block ${finalized.chain_block}. `,
      mine ? `This validator submitted it (${mine.mode}) in chain block ${mine.chain_block}; ${sameWeights(mine, finalized) ? "identical to" : "DIFFERENT from"} the network's vector.` : "This validator has not submitted it."),
    weightChart(finalized),
    table("The vector the network finalized when the epoch closed (sum 65535).", ["UID", "Weight", "Share"],
      finalized.uids.map((u, i) => h("tr", { "data-testid": "weight-row", "data-uid": u, "data-weight": finalized.weights[i] },
        h("td", {}, u), h("td", {}, finalized.weights[i]), h("td", {}, `${((100 * finalized.weights[i]) / sum).toFixed(2)} %`)))),
    h("h2", {}, "On chain"),
    chain ? table(`What the chain holds from each validator (head ${chain.head}), compared with the vector above.`,
      ["UID", "Validator", "Targets", "Set in", "Compared"], validators) : h("p", {}, "This validator has no chain."));
  document.body.dataset.epoch = finalized.epoch;
}

// ---- Routing and live updates ---------------------------------------------------------------

const pages = {
  overview: () => renderOverview(),
  validators: () => renderValidators(),
  challenges: () => renderChallenges(),
  leaderboard: (arg) => renderLeaderboard(arg),
  submission: (arg) => renderSubmission(arg),
  epochs: () => renderEpochs(),
};

async function render() {
  if (state.fetching) return;
  state.fetching = true;
  state.fetchedAt = state.status ? state.status.height : -1;
  try {
    await pages[state.page](state.arg);
    // `data-ready` names the page once it shows data (the overview needs a status first).
    if (state.page !== "overview" || state.status) document.body.dataset.ready = state.page;
  } catch (e) {
    setMain(state.page, h("h2", {}, "Cannot show this page"), h("p", { class: "bad", role: "alert" }, e.message));
    document.body.dataset.ready = state.page;
  } finally {
    state.fetching = false;
  }
}

// Reads the page from the address (`#leaderboard/tsp`).
function parseRoute() {
  const [page, ...rest] = (location.hash.replace(/^#/, "") || "overview").split("/");
  state.page = pages[page] ? page : "overview";
  state.arg = rest.join("/");
}

function route() {
  parseRoute();
  delete document.body.dataset.ready;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === state.page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  render();
}

function onStatus(st) {
  state.status = st;
  const last = state.latency[state.latency.length - 1];
  if (!last || last[0] !== st.height) {
    state.latency.push([st.height, st.finalization_ms_p50, st.finalization_ms_p99]);
    if (state.latency.length > 120) state.latency.shift();
  }
  if (st.chain && (!state.heads.length || state.heads[state.heads.length - 1][1] !== st.chain.head)) {
    state.heads.push([Date.now(), st.chain.head]);
    if (state.heads.length > 60) state.heads.shift();
  }
  renderBar();
  if (state.page === "overview") {
    renderOverview();
    document.body.dataset.ready = "overview";
  } else if (st.height >= state.fetchedAt + 5) {
    // State pages follow the chain of blocks, a few heights at a time.
    render();
  }
}

function connect() {
  const events = new EventSource("/api/v1/events");
  events.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  events.onerror = () => {
    document.getElementById("bar").textContent = "reconnecting…";
  };
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  parseRoute();
  try { onStatus(await api("/api/v1/status")); } catch (_) { /* the events will bring it */ }
  route();
  connect();
});

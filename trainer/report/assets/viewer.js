"use strict";
// The turnwise trajectory viewer: page state, the iteration and trajectory lists with their
// filters, the trajectory and group views. Reads the JSON embedded in the page
// (trainer/report/view.py); tokens.js lays out and colours the tokens.

const DATA = JSON.parse(document.getElementById("turnwise-data").textContent);
const TRAJS = DATA.trajectories;
const keyOf = (t) => t.iteration + "|" + t.traj_id;
const byKey = new Map(TRAJS.map((t) => [keyOf(t), t]));

const state = {
  iteration: null, selected: null, view: "trajectory", colour: "advantage",
  showContext: false, anchor: null,
  filters: {success: "all", rmin: null, rmax: null, kind: "all", task: "", group: "all"},
};
let TOKENS = [];  // what each rendered token span describes, for the tooltip
const spans = (tokens) => tokenSpans(tokens, state.colour, TOKENS);

// ---------- filters and lists ----------
function inScope(t) { return state.iteration === "all" || t.iteration === state.iteration; }

function passes(t) {
  const f = state.filters;
  if (f.success === "yes" && !t.success) return false;
  if (f.success === "no" && t.success) return false;
  if (f.rmin !== null && t.outcome_reward < f.rmin) return false;
  if (f.rmax !== null && t.outcome_reward > f.rmax) return false;
  if (f.kind !== "all" && t.task_kind !== f.kind) return false;
  if (f.task && !String(t.task_id).includes(f.task)) return false;
  if (f.group !== "all" && t.uid !== f.group) return false;
  return true;
}

function filtered() { return TRAJS.filter((t) => inScope(t) && passes(t)); }
function current() { return state.selected ? byKey.get(state.selected) : null; }
const mark = (t) => el("span", {class: t.success ? "ok" : "bad"}, t.success ? "\u2713 " : "\u2717 ");
const brief = (t) => `R ${num(t.outcome_reward, 2)} · ${t.turns.length} turns · ${t.status}`;

function fillSelect(id, values, chosen) {
  const select = document.getElementById(id);
  select.replaceChildren(el("option", {value: "all"}, "all"),
                         ...values.map((v) => el("option", {value: v}, v || "(none)")));
  select.value = values.includes(chosen) ? chosen : "all";
  return select.value;
}

function renderIterations() {
  const metrics = new Map(DATA.metrics.map((m) => [m.iteration, m]));
  const item = (it, label, note) => el("li", {
    class: state.iteration === it ? "selected" : "", "data-iteration": it,
    onclick: () => selectIteration(it),
  }, el("span", {}, label), el("span", {class: "muted"}, note));
  const items = [item("all", "all iterations", TRAJS.length)];
  for (const it of unique(TRAJS.map((t) => t.iteration)).sort((a, b) => a - b)) {
    const m = metrics.get(it) || {};
    const saved = TRAJS.filter((t) => t.iteration === it).length;
    items.push(item(it, `iter ${it}`, `reward ${num(m["rollout/reward"], 2)} · ` +
                                      `success ${num(m["rollout/success"], 2)} · ${saved} saved`));
  }
  document.getElementById("iterations").replaceChildren(...items);
}

function renderList() {
  const scope = TRAJS.filter(inScope);
  const f = state.filters;
  f.kind = fillSelect("f-kind", unique(scope.map((t) => t.task_kind)).sort(), f.kind);
  f.group = fillSelect("f-group", unique(scope.map((t) => t.uid)), f.group);
  const shown = filtered();
  document.getElementById("list-title").textContent =
    `Trajectories (${shown.length} of ${scope.length})`;
  const name = (t) => (state.iteration === "all" ? `${t.iteration}: ${t.traj_id}` : t.traj_id);
  document.getElementById("traj-list").replaceChildren(...shown.map((t) => el("li", {
    class: keyOf(t) === state.selected ? "selected" : "", "data-key": keyOf(t),
    onclick: () => select(keyOf(t)),
  }, el("span", {}, mark(t), name(t)), el("span", {class: "muted"}, brief(t)))));
  if (!shown.some((t) => keyOf(t) === state.selected)) {
    state.selected = shown.length ? keyOf(shown[0]) : null;
  }
}

function legend() {
  const box = document.getElementById("legend");
  box.replaceChildren();
  if (state.colour === "advantage") {
    const traj = current();
    const s = traj ? scaleOf(traj) : 1;
    const bar = el("span", {class: "bar"});
    bar.style.background = `linear-gradient(to right, rgba(${COLOURS.neg},${MAX_ALPHA}), ` +
      `#fff, rgba(${COLOURS.pos},${MAX_ALPHA}))`;
    box.append(el("span", {}, signed(-s, 2)), bar, el("span", {}, signed(s, 2)), "advantage");
  } else if (state.colour === "diff") {
    box.append(`orange: |trainer - rollout| log-prob, full at ${DIFF_SCALE}`);
  } else {
    box.append("purple: 1 - rollout probability of the token");
  }
  box.append(el("span", {class: "tok masked"}, "masked"),
             el("span", {class: "tok ctx"}, "not generated"));
}

// ---------- the trajectory view ----------
function badges(traj, turn, t) {
  const badge = (cls, title, text, onclick) => el("span", {class: "badge " + cls, title, onclick}, text);
  const out = [el("b", {}, `turn ${t}`),
               badge("", "advantage of this turn", `A ${signed(turn.advantage)}`),
               badge("", "step reward", `r ${num(turn.reward, 2)}`)];
  if (turn.anchor !== null) {
    out.push(badge("anchor", `GiGPO anchor state (click: highlight the group)\n${turn.anchor}`,
                   `anchor \u00d7${turn.anchor_group_size ?? "?"}`,
                   (e) => { e.stopPropagation(); toggleAnchor(traj.uid, turn.anchor); }));
  }
  if (turn.info_gain !== null) out.push(badge("ig", "IGPO information gain", `IG ${signed(turn.info_gain)}`));
  if (turn.entropy !== null) out.push(badge("", "ARPO: entropy of the first tokens", `H ${num(turn.entropy)}`));
  if (traj.branch_turn === t) out.push(badge("arpo", "", "ARPO branch point"));
  if (turn.shared) out.push(badge("arpo", "", `shared with ${traj.parent_id}`));
  if (turn.invalid) out.push(badge("err", "", "invalid"));
  if (turn.error) out.push(badge("err", turn.error, "error"));
  if (turn.finish_reason && turn.finish_reason !== "stop") out.push(badge("", "", turn.finish_reason));
  return out;
}

function toolCalls(turn) {
  return (turn.tool_calls || []).map((call) => {
    const failed = (call.status && call.status !== "ok") || call.error;
    const args = call.arguments !== undefined ? JSON.stringify(call.arguments) : "";
    const latency = call.latency !== undefined ? ` ${num(call.latency, 2)}s` : "";
    return el("div", {class: "tool" + (failed ? " failed" : "")},
      `${call.name || "tool"}(${args}) \u2192 ${call.status || "ok"}${latency}\n` +
      (call.error ? `error: ${call.error}\n` : "") + (call.result ?? call.content ?? ""));
  });
}

function contextBlock(tokens, label) {
  const details = el("details", {class: "context", open: state.showContext});
  details.append(el("summary", {}, `${label} \u00b7 ${tokens.length} tokens \u00b7 not trained`));
  const fill = () => { if (details.children.length === 1) details.append(spans(tokens)); };
  if (state.showContext) fill();
  details.addEventListener("toggle", fill);
  return details;
}

function turnCard(traj, t) {
  const turn = traj.turns[t], parts = layout(traj)[t];
  const cls = "turn" + (turn.shared ? " shared" : "") + (traj.branch_turn === t ? " branch" : "");
  const card = el("div", {class: cls, "data-anchor": turn.anchor ?? ""});
  card.append(el("div", {class: "turn-head"}, badges(traj, turn, t)));
  if (parts.context) {
    const what = traj.mode === "per_step" ? "prompt of this turn" : "episode prompt";
    card.append(contextBlock(parts.context, what));
  }
  if (parts.response.length) card.append(spans(parts.response));
  else card.append(el("div", {class: "muted"}, "this turn is not in the training batch"));
  card.append(...toolCalls(turn));
  if (parts.observation && parts.observation.length) {
    card.append(el("div", {class: "section-label"}, "observation (appended, not trained)"),
                spans(parts.observation));
  } else if (turn.observation) {
    card.append(el("div", {class: "section-label"}, "environment"),
                el("div", {class: "obs-text"}, turn.observation));
  }
  return card;
}

function trajectoryView(traj) {
  const kv = (k, v) => el("span", {}, el("b", {}, k + " "), v);
  const trained = traj.rows.some((r) => r.trainer_logprobs) ? "yes" : "not saved";
  const head = el("div", {class: "traj-head"},
    el("h2", {}, mark(traj), traj.traj_id),
    el("div", {class: "kv"},
      kv("iteration", traj.iteration), kv("group", traj.uid),
      kv("task", `${traj.task_id} (${traj.task_kind || "–"})`),
      kv("reward", num(traj.outcome_reward)), kv("status", traj.status), kv("mode", traj.mode),
      // Iteration N trains on episodes played by the weights after iteration N - 1 (or older,
      // with rollout.max_staleness): version V is the weights after iteration V.
      kv("played by", traj.version === 0 ? "policy version 0 (the starting weights)"
        : `policy version ${traj.version} (the weights after iteration ${traj.version})`),
      traj.parent_id ? kv("branched from", `${traj.parent_id} at turn ${traj.branch_turn}`) : null,
      traj.answer_logprob_prompt !== null
        ? kv("answer log-prob (prompt)", num(traj.answer_logprob_prompt)) : null,
      kv("trainer log-probs", trained)));
  const intro = traj.initial_observation ? el("div", {class: "turn"},
    el("div", {class: "section-label"}, "first observation"),
    el("div", {class: "obs-text"}, traj.initial_observation)) : null;
  return el("div", {}, head, intro, traj.turns.map((_, t) => turnCard(traj, t)));
}

// ---------- the group view: siblings side by side, one row per turn ----------
function groupView(traj) {
  const siblings = TRAJS.filter((t) => t.iteration === traj.iteration && t.uid === traj.uid);
  const depth = Math.max(...siblings.map((t) => t.turns.length));
  const grid = el("div", {class: "group"});
  grid.style.gridTemplateColumns = `repeat(${siblings.length}, minmax(260px, 1fr))`;
  for (const s of siblings) {
    const open = () => { state.view = "trajectory"; select(keyOf(s)); };
    grid.append(el("div", {class: "col-head" + (s === traj ? " current" : ""), onclick: open},
      mark(s), el("b", {}, s.traj_id), el("div", {class: "muted"}, brief(s))));
  }
  for (let t = 0; t < depth; t++) {
    for (const s of siblings) {
      if (t >= s.turns.length) { grid.append(el("div", {class: "cell empty"})); continue; }
      const turn = s.turns[t];
      grid.append(el("div", {class: "cell", "data-anchor": turn.anchor ?? ""},
        el("div", {class: "turn-head"}, badges(s, turn, t)),
        spans(layout(s)[t].response), ...toolCalls(turn),
        turn.observation ? el("div", {class: "muted"}, turn.observation.slice(0, 240)) : null));
    }
  }
  const note = `group ${traj.uid} · iteration ${traj.iteration} · ` +
               `${siblings.length} siblings (filters not applied)`;
  return el("div", {}, el("div", {class: "muted"}, note), grid);
}

function toggleAnchor(uid, anchor) {
  const same = state.anchor && state.anchor.uid === uid && state.anchor.anchor === anchor;
  state.anchor = same ? null : {uid, anchor};
  markAnchors();
}

function markAnchors() {
  for (const node of document.querySelectorAll("#view [data-anchor]")) {
    node.classList.toggle("anchor-hit", !!state.anchor && node.dataset.anchor === state.anchor.anchor);
  }
}

function renderView() {
  TOKENS = [];
  const view = document.getElementById("view");
  const traj = current();
  document.getElementById("compare").textContent =
    state.view === "group" ? "Back to trajectory" : "Compare group";
  if (!traj) {
    view.replaceChildren(el("div", {class: "empty-note"}, TRAJS.length
      ? "No trajectory matches the filters."
      : "This run saved no trajectories (log.save_trajectories=0?)."));
  } else {
    view.replaceChildren(state.view === "group" ? groupView(traj) : trajectoryView(traj));
  }
  markAnchors();
  legend();
}

// ---------- wiring ----------
function select(key) { state.selected = key; renderList(); renderView(); }

function selectIteration(it) {
  state.iteration = it;
  state.anchor = null;
  renderIterations();
  renderList();
  renderView();
}

function readNumber(id) {
  const v = document.getElementById(id).value;
  return v === "" || isNaN(Number(v)) ? null : Number(v);
}

function setupHeader() {
  const cfg = DATA.run.config || {};
  const pick = (section, key) => (cfg[section] ? cfg[section][key] : undefined);
  const pairs = [["run", DATA.run.name], ["estimator", pick("credit", "estimator")],
                 ["mode", pick("rollout", "mode")], ["model", pick("model", "name")],
                 ["env", pick("env", "name")], ["group size", pick("rollout", "group_size")]];
  document.getElementById("run-info").replaceChildren(
    ...pairs.filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => el("span", {}, `${k} `, el("b", {}, v), "   ")));
}

function setupControls() {
  const value = (id) => document.getElementById(id).value;
  const onFilter = () => {
    Object.assign(state.filters, {
      success: value("f-success"), rmin: readNumber("f-rmin"), rmax: readNumber("f-rmax"),
      kind: value("f-kind"), task: value("f-task").trim(), group: value("f-group"),
    });
    renderList();
    renderView();
  };
  for (const id of ["f-success", "f-rmin", "f-rmax", "f-kind", "f-task", "f-group"]) {
    document.getElementById(id).addEventListener("input", onFilter);
  }
  const on = (id, event, fn) => document.getElementById(id).addEventListener(event, fn);
  on("colour", "change", (e) => { state.colour = e.target.value; renderView(); });
  on("show-context", "change", (e) => { state.showContext = e.target.checked; renderView(); });
  on("compare", "click", () => {
    state.view = state.view === "group" ? "trajectory" : "group";
    renderView();
  });
  document.addEventListener("keydown", (e) => {  // j / k: next / previous trajectory
    if (e.target.closest("input, select") || (e.key !== "j" && e.key !== "k")) return;
    const shown = filtered();
    const i = shown.findIndex((t) => keyOf(t) === state.selected);
    const next = shown[Math.max(0, Math.min(shown.length - 1, i + (e.key === "j" ? 1 : -1)))];
    if (next) select(keyOf(next));
  });
}

function setupPlots() {
  for (const tab of document.querySelectorAll("nav .tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll("nav .tab")) t.classList.toggle("active", t === tab);
      const plots = tab.dataset.tab === "plots";
      document.getElementById("plots").hidden = !plots;
      document.getElementById("sidebar").hidden = plots;
      document.getElementById("content").hidden = plots;
    });
  }
  const names = Object.keys(DATA.plots);
  document.getElementById("plots").replaceChildren(...(names.length
    ? names.map((name) => el("figure", {}, el("img", {src: DATA.plots[name], alt: name}),
                             el("figcaption", {}, name + ".png")))
    : [el("div", {class: "empty-note"}, "No plots in this run folder yet.")]));
}

function setup() {
  setupHeader();
  setupControls();
  setupPlots();
  setupTooltip(document.getElementById("view"), () => TOKENS);
  const iterations = unique(TRAJS.map((t) => t.iteration)).sort((a, b) => a - b);
  selectIteration(iterations.length ? iterations[iterations.length - 1] : "all");
}

setup();

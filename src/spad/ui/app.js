// spad's dashboard: plain JavaScript, no library. One event stream per tab (GET /events,
// read with fetch so the token goes in a header, never in a URL); every request for data
// carries the token, kept in this tab's sessionStorage only.
"use strict";

const TOKEN_KEY = "spad.token";
const ACTIVE = new Set(["running", "stopping"]);
const LOG_POLL_MS = 1000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  readOnly: false,
  workflows: new Map(), // "project/workflow" -> {project, name, status, run_id, since, restarts}
  attempts: new Map(), // "project/workflow" -> Map(task -> attempt), for restarts
  selected: null, // "project/workflow"
  detailRun: null,
  tasks: new Map(), // task -> row of the selected workflow
  log: null, // {task, run_id, attempt, offset, timer}
  lastEventId: null,
  stream: null,
  rpcId: 0,
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// -- talking to spad --------------------------------------------------------------------

class Refused extends Error {}

async function request(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  if (response.status === 401) {
    signOut("The token was refused: sign in again.");
    throw new Refused("unauthorized");
  }
  return response;
}

async function rpc(method, params = {}) {
  const body = JSON.stringify({ jsonrpc: "2.0", id: ++state.rpcId, method, params });
  const response = await request("/rpc", {
    method: "POST", body, headers: { "Content-Type": "application/json" },
  });
  const reply = await response.json();
  if (reply.error) throw new Refused(reply.error.message);
  return reply.result;
}

async function rpcBatch(calls) {
  if (!calls.length) return [];
  const body = JSON.stringify(calls.map(([method, params], i) =>
    ({ jsonrpc: "2.0", id: i, method, params })));
  const response = await request("/rpc", {
    method: "POST", body, headers: { "Content-Type": "application/json" },
  });
  const replies = await response.json();
  const byId = new Map(replies.map((r) => [r.id, r]));
  return calls.map((_, i) => byId.get(i));
}

function say(text) {
  $("#message").textContent = text || "";
}

async function act(label, work) {
  say("");
  try {
    await work();
  } catch (error) {
    if (!(error instanceof Refused && error.message === "unauthorized")) {
      say(`${label}: ${error.message}`);
    }
  }
}

// -- sign-in ----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const given = $("#token").value.trim();
  $("#sign-in-error").textContent = "";
  const response = await fetch("/info", {
    headers: { Authorization: `Bearer ${given}` }, cache: "no-store",
  });
  if (response.status !== 200) {
    $("#sign-in-error").textContent = "Wrong token: spad refused it. Nothing is shown.";
    return;
  }
  state.token = given;
  sessionStorage.setItem(TOKEN_KEY, given);
  $("#token").value = "";
  start(await response.json());
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.lastEventId = null;
  if (state.stream) state.stream.abort();
  stopLog();
  state.workflows.clear();
  $("#workflows tbody").replaceChildren();
  $("#alarms tbody").replaceChildren();
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = why || "";
  $("#where").textContent = "";
  $("#mode").textContent = "";
}

async function resume() {
  if (!state.token) return;
  try {
    const response = await request("/info");
    start(await response.json());
  } catch (error) {
    /* signOut already said why */
  }
}

function start(info) {
  state.readOnly = Boolean(info.read_only);
  $("#where").textContent = `${info.host} · spad ${info.version}`;
  $("#mode").textContent = state.readOnly ? "read-only" : "";
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  document.body.classList.toggle("read-only", state.readOnly);
  act("loading", async () => {
    // Where the journal stands before the first look: the stream starts there, so nothing
    // that happens while the page loads is missed.
    if (state.lastEventId === null) {
      state.lastEventId = String((await rpc("events", { limit: 1 })).last_id);
    }
    connect();
    await Promise.all([loadWorkflows(), loadAlarms()]);
  });
}

// -- workflows --------------------------------------------------------------------------

function statusClass(status) {
  if (/^(error|terminated|timeout|immortal)/.test(status)) return "s-failed";
  return `s-${status.replace(/[^a-z0-9]+/g, "-")}`;
}

function badge(status) {
  return el("span", { class: `badge ${statusClass(status)}` }, status);
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  const ago = seconds < 60 ? `${seconds}s` : seconds < 3600 ? `${Math.floor(seconds / 60)}m`
    : seconds < 86400 ? `${Math.floor(seconds / 3600)}h` : `${Math.floor(seconds / 86400)}d`;
  return `${date.toLocaleTimeString()} (${ago} ago)`;
}

async function loadWorkflows() {
  const listing = await rpc("list");
  const found = [];
  for (const project of listing.projects) {
    for (const wf of project.workflows) found.push({ project: project.name, ...wf });
  }
  const replies = await rpcBatch(found.map((wf) =>
    ["status", { project: wf.project, workflow: wf.name }]));
  state.workflows.clear();
  found.forEach((wf, i) => {
    const key = `${wf.project}/${wf.name}`;
    const tasks = (replies[i] && replies[i].result && replies[i].result.tasks) || [];
    state.attempts.set(key, new Map(tasks.map((t) => [t.name, t.attempt || 0])));
    state.workflows.set(key, {
      project: wf.project, name: wf.name, status: wf.status, run_id: wf.run_id,
      since: sinceOf(wf.status, tasks),
      restarts: wf.restarts ?? restartsOf(state.attempts.get(key)),
    });
  });
  renderWorkflows();
}

function sinceOf(status, tasks) {
  // The time it entered its status, as well as the rows tell it: the run's first start
  // while it runs, its tasks' last change once it ended (the stream tells it exactly after).
  const starts = tasks.map((t) => t.started_at).filter(Boolean).sort();
  const changes = tasks.map((t) => t.since || t.ended_at).filter(Boolean).sort();
  if (ACTIVE.has(status)) return starts[0] || null;
  return changes[changes.length - 1] || null;
}

function restartsOf(attempts) {
  let total = 0;
  for (const attempt of attempts.values()) total += Math.max(0, attempt - 1);
  return total;
}

function actionButtons(wf) {
  if (state.readOnly) return [];
  const key = `${wf.project}/${wf.name}`;
  if (!ACTIVE.has(wf.status)) {
    return [el("button", { type: "button", onclick: () => runWorkflow(wf) }, "Run")];
  }
  return [
    el("button", {
      type: "button", onclick: () => confirmThen(`Stop ${key}?`, () => stopWorkflow(wf, false)),
    }, "Stop"),
    el("button", {
      type: "button", onclick: () => confirmThen(`Restart ${key}?`, () => restartWorkflow(wf)),
    }, "Restart"),
    el("button", {
      type: "button", class: "danger",
      onclick: () => confirmThen(`Force stop ${key}? Its tasks are killed at once.`,
        () => stopWorkflow(wf, true)),
    }, "Force stop"),
  ];
}

function workflowRow(wf) {
  const key = `${wf.project}/${wf.name}`;
  const name = el("a", {
    href: "#", class: "wf-name",
    onclick: (event) => { event.preventDefault(); select(key); },
  }, wf.name);
  return el("tr", { "data-workflow": key, "data-status": wf.status,
    class: key === state.selected ? "selected" : null },
  el("td", {}, wf.project), el("td", {}, name), el("td", {}, badge(wf.status)),
  el("td", {}, wf.run_id === null ? "" : String(wf.run_id)),
  el("td", { class: "since", "data-since": wf.since || "" }, when(wf.since)),
  el("td", {}, String(wf.restarts)),
  el("td", { class: "act" }, ...actionButtons(wf)));
}

function matches(wf) {
  const filter = $("#filter").value;
  const search = $("#search").value.trim().toLowerCase();
  if (search && !`${wf.project}/${wf.name}`.toLowerCase().includes(search)) return false;
  if (!filter) return true;
  if (filter === "active") return ACTIVE.has(wf.status);
  if (filter === "failed") return statusClass(wf.status) === "s-failed";
  return wf.status === filter;
}

function renderWorkflows() {
  const rows = [...state.workflows.values()]
    .sort((a, b) => `${a.project}/${a.name}`.localeCompare(`${b.project}/${b.name}`))
    .filter(matches)
    .map(workflowRow);
  $("#workflows tbody").replaceChildren(...rows);
  $("#no-workflows").hidden = rows.length > 0;
  if (state.selected) renderDetailActions();
}

function updateWorkflowRow(key) {
  const wf = state.workflows.get(key);
  const old = document.querySelector(`tr[data-workflow="${CSS.escape(key)}"]`);
  if (!wf || !old || !matches(wf)) {
    renderWorkflows();
    return;
  }
  old.replaceWith(workflowRow(wf));
  if (key === state.selected) renderDetailActions();
}

async function runWorkflow(wf) {
  await act("Run", () => rpc("run", { project: wf.project, workflow: wf.name }));
}

async function stopWorkflow(wf, force) {
  await act(force ? "Force stop" : "Stop",
    () => rpc("stop", { project: wf.project, workflow: wf.name, force }));
}

async function restartWorkflow(wf) {
  // The server stops it gracefully and runs it again once it ended.
  await act("Restart", () => rpc("restart", { project: wf.project, workflow: wf.name }));
}

function confirmThen(text, work) {
  $("#confirm-text").textContent = text;
  $("#confirm").hidden = false;
  const yes = $("#confirm-yes");
  const no = $("#confirm-no");
  const close = () => {
    $("#confirm").hidden = true;
    yes.onclick = null;
    no.onclick = null;
  };
  yes.onclick = () => { close(); work(); };
  no.onclick = close;
  yes.focus();
}

// -- one workflow: tasks, log, runs, timeline --------------------------------------------

async function select(key) {
  state.selected = key;
  stopLog();
  $("#detail").hidden = false;
  renderWorkflows();
  await act("status", loadDetail);
}

async function loadDetail() {
  const wf = state.workflows.get(state.selected);
  if (!wf) return;
  const result = await rpc("status", { project: wf.project, workflow: wf.name });
  state.detailRun = result.run_id;
  $("#detail-title").textContent =
    `${state.selected} · ${result.run_id === null ? "never run" : `run ${result.run_id}`}`;
  state.tasks = new Map(result.tasks.map((t) => [t.name, {
    name: t.name, status: t.status, attempt: t.attempt, exit_code: t.exit_code,
    where: t.job || t.pid, since: t.since || t.ended_at || t.started_at,
  }]));
  renderTasks();
  renderDetailActions();
  await Promise.all([loadRuns(wf), loadTimeline(wf, result.run_id)]);
}

function renderDetailActions() {
  const wf = state.workflows.get(state.selected);
  $("#detail-actions").replaceChildren(...(wf ? actionButtons(wf) : []));
}

function taskRow(task) {
  const name = el("a", {
    href: "#", class: "task-name",
    onclick: (event) => { event.preventDefault(); openLog(task.name); },
  }, task.name);
  return el("tr", { "data-task": task.name, "data-status": task.status },
    el("td", {}, name), el("td", {}, badge(task.status)),
    el("td", {}, task.attempt === null || task.attempt === undefined ? "" : String(task.attempt)),
    el("td", {}, task.exit_code === null || task.exit_code === undefined
      ? "" : String(task.exit_code)),
    el("td", {}, task.where ? String(task.where) : ""),
    el("td", { class: "since", "data-since": task.since || "" }, when(task.since)));
}

function renderTasks() {
  $("#tasks tbody").replaceChildren(...[...state.tasks.values()].map(taskRow));
}

async function loadRuns(wf) {
  let runs;
  try {
    runs = (await rpc("history", { project: wf.project, workflow: wf.name, limit: 20 })).runs;
  } catch (error) {
    // Without a history method, the runs the event journal still holds.
    const found = await rpc("events", {
      project: wf.project, workflow: wf.name, kind: "workflow", limit: 2000, newest_first: true,
    });
    const byRun = new Map();
    for (const event of found.events) {
      if (!byRun.has(event.run_id)) byRun.set(event.run_id, { run_id: event.run_id, status: event.status, started_at: null });
      byRun.get(event.run_id).started_at = event.at;
    }
    runs = [...byRun.values()];
  }
  $("#runs").replaceChildren(...runs.map((run) => el("li", {},
    el("a", { href: "#", onclick: (event) => { event.preventDefault(); loadTimeline(wf, run.run_id); } },
      `run ${run.run_id}`), " ", badge(run.status), " ",
    el("span", { class: "muted" }, when(run.started_at)))));
}

async function loadTimeline(wf, runId) {
  $("#timeline-title").textContent = runId === null ? "Timeline" : `Timeline of run ${runId}`;
  $("#timeline").dataset.run = runId === null ? "" : String(runId);
  if (runId === null) {
    $("#timeline").replaceChildren();
    return;
  }
  const found = await rpc("events", {
    project: wf.project, workflow: wf.name, run_id: runId, limit: 1000,
  });
  $("#timeline").replaceChildren(...found.events.map(timelineItem));
}

function timelineItem(event) {
  const what = event.kind === "task" ? `task ${event.task}` : "workflow";
  return el("li", {}, el("span", { class: "muted" }, new Date(event.at).toLocaleTimeString()),
    ` ${what} `, badge(event.status),
    event.kind === "task" && event.attempt ? el("span", { class: "muted" }, ` attempt ${event.attempt}`) : null);
}

// The log view follows the task's newest attempt: it asks for what was added since its
// offset every second while open, and at once when the task changes.
async function openLog(task) {
  stopLog();
  const wf = state.workflows.get(state.selected);
  if (!wf) return;
  const row = state.tasks.get(task);
  state.log = { task, wf, run_id: state.detailRun, attempt: row ? row.attempt : null,
    offset: null, timer: null, busy: false };
  $("#log-view").hidden = false;
  $("#log").textContent = "";
  $("#log").setAttribute("data-log", task);
  $("#log-title").textContent = `Log of ${task}`;
  await pollLog();
}

function stopLog() {
  if (state.log && state.log.timer) clearTimeout(state.log.timer);
  state.log = null;
  $("#log-view").hidden = true;
  $("#log").removeAttribute("data-log");
}

async function pollLog() {
  const log = state.log;
  if (!log || log.busy) return;
  log.busy = true;
  try {
    const row = state.tasks.get(log.task);
    if (row && row.attempt && row.attempt !== log.attempt) {
      log.attempt = row.attempt;
      log.offset = null;
      $("#log").textContent += `\n--- attempt ${row.attempt} ---\n`;
    }
    if (log.attempt) {
      const params = { project: log.wf.project, workflow: log.wf.name, task: log.task,
        run_id: log.run_id, attempt: log.attempt };
      if (log.offset === null) Object.assign(params, { offset: 0, tail: 500 });
      else params.offset = log.offset;
      const reply = await rpc("logs", params);
      if (state.log !== log) return;
      log.offset = reply.offset;
      if (reply.text) {
        const pre = $("#log");
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += reply.text;
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      $("#log-title").textContent =
        `Log of ${log.task} (run ${log.run_id}, attempt ${log.attempt})`;
    }
  } catch (error) {
    if (state.log === log) $("#log-title").textContent = `Log of ${log.task}: ${error.message}`;
  } finally {
    log.busy = false;
    if (state.log === log) log.timer = setTimeout(pollLog, LOG_POLL_MS);
  }
}

// -- alarms -----------------------------------------------------------------------------

let alarmReload = null;

async function loadAlarms() {
  const result = await rpc("alarms_list", { state: ["open", "acknowledged"], limit: 200 });
  $("#alarms tbody").replaceChildren(...result.alarms.map(alarmRow));
  $("#no-alarms").hidden = result.alarms.length > 0;
}

function alarmRow(alarm) {
  const buttons = [];
  if (!state.readOnly && alarm.state === "open") {
    buttons.push(el("button", { type: "button", onclick: () => alarmAction("alarm_ack", alarm.id) }, "Ack"));
  }
  if (!state.readOnly && alarm.state !== "cleared") {
    buttons.push(el("button", { type: "button", onclick: () => alarmAction("alarm_clear", alarm.id) }, "Clear"));
  }
  return el("tr", { "data-alarm": String(alarm.id), "data-state": alarm.state },
    el("td", {}, String(alarm.id)), el("td", {}, alarm.project), el("td", {}, alarm.source),
    el("td", {}, alarm.kind), el("td", {}, el("span", { class: `badge s-${alarm.severity}` }, alarm.severity)),
    el("td", {}, badge(alarm.state)), el("td", {}, String(alarm.count)),
    el("td", {}, alarm.message), el("td", {}, when(alarm.last_seen)),
    el("td", { class: "act" }, ...buttons));
}

async function alarmAction(method, id) {
  await act(method === "alarm_ack" ? "Ack" : "Clear", async () => {
    await rpc(method, { id });
    await loadAlarms();
  });
}

function alarmsChanged() {
  clearTimeout(alarmReload);
  alarmReload = setTimeout(() => act("alarms", loadAlarms), 100);
}

// -- the event stream -------------------------------------------------------------------

let reloadSoon = null;

function onEvent(kind, data) {
  if (kind === "alarm") {
    alarmsChanged();
    return;
  }
  const key = `${data.project}/${data.workflow}`;
  const wf = state.workflows.get(key);
  if (!wf) { // a workflow made since the page loaded
    clearTimeout(reloadSoon);
    reloadSoon = setTimeout(() => act("loading", loadWorkflows), 200);
    return;
  }
  if (kind === "workflow") {
    const newRun = data.run_id !== wf.run_id;
    Object.assign(wf, { status: data.status, run_id: data.run_id, since: data.at });
    if (newRun) state.attempts.set(key, new Map());
    updateWorkflowRow(key);
    if (key === state.selected) act("runs", () => (newRun ? loadDetail() : loadRuns(wf)));
  } else if (kind === "task" && data.run_id === wf.run_id) {
    if (!wf.since) {
      wf.since = data.at;
      updateWorkflowRow(key);
    }
    const attempts = state.attempts.get(key) || new Map();
    attempts.set(data.task, data.attempt || 0);
    state.attempts.set(key, attempts);
    const restarts = restartsOf(attempts);
    if (restarts !== wf.restarts) {
      wf.restarts = restarts;
      updateWorkflowRow(key);
    }
  }
  if (key === state.selected) onDetailEvent(kind, data);
}

function onDetailEvent(kind, data) {
  if (kind === "task" && data.run_id === state.detailRun) {
    const row = state.tasks.get(data.task) || { name: data.task };
    Object.assign(row, { status: data.status, attempt: data.attempt, exit_code: data.exit_code,
      where: data.pid || row.where,
      since: data.at });
    state.tasks.set(data.task, row);
    const old = document.querySelector(`tr[data-task="${CSS.escape(data.task)}"]`);
    if (old) old.replaceWith(taskRow(row)); else renderTasks();
    if (state.log && state.log.task === data.task) pollLog();
  }
  if ($("#timeline").dataset.run === String(data.run_id)) {
    $("#timeline").append(timelineItem({ kind, ...data }));
  }
}

function reloadAll() {
  act("loading", () => Promise.all([loadWorkflows(), loadAlarms()]));
}

function dispatch(block) {
  let id = null;
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":") && line.includes("are gone")) reloadAll(); // resumed too late
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (id !== null) state.lastEventId = id;
  if (data.length) onEvent(kind, JSON.parse(data.join("\n")));
}

async function connect() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  let delay = 1000;
  while (state.token && state.stream === controller) {
    try {
      const headers = state.lastEventId ? { "Last-Event-ID": state.lastEventId } : {};
      const response = await request("/events", { headers, signal: controller.signal });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      $("#live").className = "live on";
      $("#live").textContent = "live";
      delay = 1000;
      await read(response.body.getReader());
    } catch (error) {
      if (controller.signal.aborted || error instanceof Refused) break;
    }
    $("#live").className = "live off";
    $("#live").textContent = "reconnecting";
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10000);
  }
  $("#live").className = "live off";
  $("#live").textContent = "offline";
}

async function read(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      try {
        dispatch(block);
      } catch (error) {
        say(`event: ${error.message}`);
      }
    }
  }
}

// -- wiring -----------------------------------------------------------------------------

function refreshTimes() {
  for (const cell of document.querySelectorAll("td.since")) {
    cell.textContent = when(cell.dataset.since);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in").addEventListener("submit", (event) => act("sign in", () => signIn(event)));
  $("#sign-out").addEventListener("click", () => signOut(""));
  $("#filter").addEventListener("change", renderWorkflows);
  $("#search").addEventListener("input", renderWorkflows);
  $("#detail-close").addEventListener("click", () => {
    state.selected = null;
    stopLog();
    $("#detail").hidden = true;
    renderWorkflows();
  });
  setInterval(refreshTimes, 5000);
  resume();
});

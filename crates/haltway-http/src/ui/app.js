// The haltway dashboard: a small page application over the native HTTP API. The API key lives
// in this tab's sessionStorage only and goes out in the Authorization header, never in a URL.
"use strict";

const KEY = "haltway.key";
const view = document.getElementById("view");
let me = null; // the caller: {tenant, admin}
let leave = []; // what to stop when the view changes (timers, streams)

// ---- helpers ------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Replaces a node's children; null and false entries are left out.
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function show(...nodes) {
  fill(view, ...nodes);
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (resp.status === 401) signOut("The key was refused.");
  return { status: resp.status, body: json, text };
}

function message(r) {
  return (r.body && r.body.error && r.body.error.message) || ("HTTP " + r.status);
}

function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn();
    } catch (e) {
      if (!stopped) status("Update failed: " + e.message);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  leave.push(() => {
    stopped = true;
    clearTimeout(timer);
  });
}

function status(text) {
  const s = document.getElementById("status");
  if (s) s.textContent = text;
}

function stateText(job) {
  return job.reason ? `${job.state} (${job.reason})` : job.state;
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "—";
}

function bill(job) {
  return `${job.usage.fixed} fixed + ${job.usage.items} results = ${job.usage.total}`;
}

function ask(text, yes) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-no").focus();
  });
}

// ---- sign-in ------------------------------------------------------------------------------

function signOut(why) {
  sessionStorage.removeItem(KEY);
  me = null;
  route(why);
}

function signIn(why) {
  document.getElementById("nav").hidden = true;
  const input = el("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true });
  const note = el("p", { id: "signin-error", class: why ? "error" : null, role: "alert" }, why || "");
  const form = el(
    "form",
    {
      id: "signin",
      onsubmit: async (e) => {
        e.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        const r = await fetch("/v1/stats", { headers: { Authorization: "Bearer " + input.value.trim() } });
        if (r.status !== 200) {
          sessionStorage.removeItem(KEY);
          note.className = "error";
          note.textContent = r.status === 401 ? "The key was refused." : "Sign-in failed (HTTP " + r.status + ").";
          input.focus();
          return;
        }
        me = null;
        location.hash = "#/jobs";
        route();
      },
    },
    el("h2", {}, "Sign in"),
    el("p", { class: "muted" }, "With an API key. It is kept in this tab only and sent in a header, never in a URL."),
    el("label", { for: "key" }, "API key", input),
    el("div", { class: "row" }, el("button", { type: "submit", class: "primary", id: "signin-submit" }, "Sign in")),
    note,
  );
  show(form);
  input.focus();
}

async function whoAmI() {
  if (me) return me;
  const r = await api("GET", "/v1/stats");
  if (r.status !== 200) return null;
  me = { tenant: r.body.tenant, admin: r.body.admin };
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-ops").hidden = !me.admin;
  document.getElementById("whoami").textContent = `tenant ${me.tenant}${me.admin ? " (admin)" : ""}`;
  return me;
}

// ---- jobs ---------------------------------------------------------------------------------

function countsList(counts) {
  return el(
    "ul",
    { class: "counts", id: "counts", "aria-label": "Jobs by state" },
    Object.entries(counts).map(([state, n]) =>
      el("li", { "data-state": state }, el("b", {}, n), state),
    ),
  );
}

function jobsTable(jobs, caption) {
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { id: "jobs" },
      el("caption", { class: "muted" }, caption),
      el("thead", {}, el("tr", {}, el("th", {}, "Job"), el("th", {}, "Kind"), el("th", {}, "State"),
        el("th", {}, "Found"), el("th", {}, "Usage"), el("th", { class: "wide" }, "Group"),
        el("th", { class: "wide" }, "Created"))),
      el("tbody", {}, jobs.map((j) =>
        el("tr", { "data-id": j.id },
          el("td", {}, el("a", { href: "#/jobs/" + j.id, class: "mono" }, j.id)),
          el("td", {}, j.kind),
          el("td", { class: "state " + j.state }, stateText(j)),
          el("td", {}, j.progress.found),
          el("td", {}, j.usage.total),
          el("td", { class: "wide" }, j.group ? el("a", { href: "#/groups/" + encodeURIComponent(j.group) }, j.group) : "—"),
          el("td", { class: "wide" }, when(j.created_at))))),
    ),
  );
}

function jobsView(params) {
  const filters = { state: params.get("state") || "", kind: params.get("kind") || "", group: params.get("group") || "",
    from: params.get("from") || "", to: params.get("to") || "" };
  let cursor = params.get("cursor") || "";
  const field = (name, label, input) => el("label", { for: "f-" + name }, label, input);
  const stateSelect = el("select", { id: "f-state", name: "state" },
    ["", "queued", "running", "cancelling", "completed", "failed", "cancelled"].map((s) =>
      el("option", { value: s, selected: s === filters.state }, s || "any")));
  const kind = el("input", { id: "f-kind", name: "kind", value: filters.kind });
  const group = el("input", { id: "f-group", name: "group", value: filters.group });
  const from = el("input", { id: "f-from", name: "from", type: "datetime-local", value: filters.from });
  const to = el("input", { id: "f-to", name: "to", type: "datetime-local", value: filters.to });
  const form = el("form", {
    class: "filters",
    onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries({ state: stateSelect.value, kind: kind.value, group: group.value, from: from.value, to: to.value })) {
        if (v) q.set(k, v);
      }
      location.hash = "#/jobs?" + q.toString();
    },
  }, field("state", "State", stateSelect), field("kind", "Kind", kind), field("group", "Group", group),
  field("from", "Created from", from), field("to", "Created to", to),
  el("button", { type: "submit" }, "Filter"));
  const counts = el("div", {});
  const list = el("div", {});
  const more = el("div", { class: "row" });
  show(el("h2", {}, "Jobs"), counts, form, list, more, el("p", { id: "status", class: "muted" }));

  const load = async () => {
    const q = new URLSearchParams({ limit: "50" });
    if (filters.state) q.set("state", filters.state);
    if (filters.kind) q.set("kind", filters.kind);
    if (filters.group) q.set("group", filters.group);
    if (cursor) q.set("cursor", cursor);
    const [stats, page] = await Promise.all([api("GET", "/v1/stats"), api("GET", "/v1/jobs?" + q.toString())]);
    if (stats.status === 200) counts.replaceChildren(countsList(stats.body.counts));
    if (page.status !== 200) {
      list.replaceChildren(el("p", { class: "error", role: "alert" }, message(page)));
      return;
    }
    // The created range filters each page here: the list API pages newest first.
    const lo = filters.from ? new Date(filters.from).getTime() : -Infinity;
    const hi = filters.to ? new Date(filters.to).getTime() : Infinity;
    const jobs = page.body.data.filter((j) => {
      const t = new Date(j.created_at).getTime();
      return t >= lo && t <= hi;
    });
    list.replaceChildren(jobsTable(jobs, `${jobs.length} job(s) on this page`));
    fill(more, 
      cursor ? el("button", { type: "button", onclick: () => { cursor = ""; load(); } }, "First page") : null,
      page.body.has_more ? el("button", { type: "button", id: "next-page", onclick: () => { cursor = page.body.next_cursor; load(); } }, "Next page") : null,
    );
    status("Updated " + new Date().toLocaleTimeString());
  };
  // The first page follows new jobs live; later pages stay as read.
  every(2000, async () => {
    if (!cursor || list.childElementCount === 0) await load();
  });
}

// ---- one job ------------------------------------------------------------------------------

function jobView(id) {
  const head = el("div", {});
  const actions = el("div", { class: "row" });
  const ledgerBody = el("tbody", {});
  const events = el("ol", { class: "events", id: "events", "aria-label": "Events" });
  let job = null;
  let last = 0;
  let kept = 0;
  show(
    el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")),
    head,
    actions,
    el("h3", {}, "Results"),
    el("div", { class: "scroll" }, el("table", { id: "ledger" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Result"), el("th", {}, "Cost"), el("th", { class: "wide" }, "Delivered"))),
      ledgerBody)),
    el("h3", {}, "Events"),
    events,
    el("p", { id: "status", class: "muted" }),
  );

  const render = () => {
    const p = job.progress;
    const pct = p.completion === null || p.completion === undefined ? null : Math.max(0, Math.min(100, p.completion));
    const active = ["queued", "running", "cancelling"].includes(job.state);
    fill(head, 
      el("h2", {}, "Job ", el("span", { class: "mono" }, job.id)),
      el("p", {}, `${job.kind} · state `, el("span", { id: "job-state", class: "state " + job.state }, stateText(job))),
      job.state === "cancelling"
        ? el("p", { class: "notice", id: "stopping", role: "status" },
          `Stopping: the ${p.found} result(s) delivered so far are kept and billed; nothing more will be charged.`)
        : null,
      job.last_error ? el("p", { class: "error" }, "Last error: " + job.last_error) : null,
      el("div", { class: "panel" },
        el("label", { for: "job-progress" }, "Progress",
          el("progress", { id: "job-progress", max: "100", value: pct === null ? null : pct.toFixed(1) })),
        el("p", { id: "job-found" },
          `${p.found} found, ${p.analyzed} analyzed` + (pct === null ? "" : `, ${pct.toFixed(0)}%`) +
          (p.time_left_ms ? `, about ${Math.ceil(p.time_left_ms / 1000)} s left` : "") +
          (p.stage ? ` · ${p.stage}` : "")),
        el("p", {}, "Usage: ", el("span", { id: "job-usage" }, bill(job)), job.limit ? ` · limit ${job.limit}` : ""),
        el("dl", { class: "timeline" },
          el("dt", {}, "Created"), el("dd", {}, when(job.created_at)),
          el("dt", {}, "Started"), el("dd", {}, when(job.started_at)),
          el("dt", {}, "Cancel requested"), el("dd", {}, when(job.cancel_requested_at)),
          el("dt", {}, "Finished"), el("dd", {}, when(job.finished_at)),
          job.group ? [el("dt", {}, "Group"), el("dd", {}, el("a", { href: "#/groups/" + encodeURIComponent(job.group) }, job.group))] : null)),
    );
    // A job without a limit has nothing to extend.
    const extendable = job.limit !== null && job.limit !== undefined &&
      (["queued", "running"].includes(job.state) || (job.state === "completed" && job.reason === "limit_met"));
    const limitInput = el("input", { id: "extend-limit", type: "number", min: String((job.limit || 0) + 1), value: String((job.limit || p.found) + 10) });
    fill(actions, 
      active && job.state !== "cancelling"
        ? el("button", { type: "button", class: "danger", id: "cancel", onclick: cancel }, "Cancel")
        : null,
      extendable
        ? el("form", { class: "row", onsubmit: extend },
          el("label", { for: "extend-limit" }, "New limit", limitInput),
          el("button", { type: "submit", id: "extend" }, "Extend"))
        : null,
    );
  };

  const cancel = async () => {
    const fresh = await api("GET", "/v1/jobs/" + id);
    if (fresh.status === 200) job = fresh.body;
    const text = `Cancel job ${id}? The ${job.progress.found} result(s) delivered so far will be kept and billed ` +
      `(${bill(job)} credits); nothing more will be charged.`;
    if (!(await ask(text, "Cancel it"))) return;
    const r = await api("POST", `/v1/jobs/${id}/cancel`);
    if (r.status === 200) {
      job = r.body;
      render();
      status("Cancel requested.");
    } else {
      status("Cancel refused: " + message(r));
    }
  };

  const extend = async (e) => {
    e.preventDefault();
    const limit = Number(document.getElementById("extend-limit").value);
    const r = await api("POST", `/v1/jobs/${id}/extend`, { limit });
    if (r.status === 200) {
      job = r.body;
      render();
      status(`Extended to ${limit}.`);
    } else {
      status("Extend refused: " + message(r));
    }
  };

  const addEvent = (ev) => {
    const what = ev.type === "job.status" ? `${ev.state}${ev.reason ? " (" + ev.reason + ")" : ""}`
      : ev.type === "item.delivered" ? `result #${ev.result.seq}` : `progress: ${ev.progress.found} found`;
    events.append(el("li", { "data-type": ev.type }, `${new Date(ev.at).toLocaleTimeString()} ${ev.type}: ${what}`));
    while (events.childElementCount > 200) events.firstChild.remove();
  };

  // The event log, followed over the SSE route with fetch (EventSource cannot send the key).
  const follow = async () => {
    const abort = new AbortController();
    leave.push(() => abort.abort());
    let lastEvent = 0;
    for (let round = 0; round < 1000 && !abort.signal.aborted; round++) {
      try {
        const resp = await fetch(`/v1/jobs/${id}/events`, {
          headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY), "Last-Event-ID": String(lastEvent) },
          signal: abort.signal,
        });
        if (resp.status !== 200 || !resp.body) return; // 204: nothing more, the job ended
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
            if (!data) continue;
            const ev = JSON.parse(data);
            if (typeof ev.id === "number") lastEvent = ev.id;
            addEvent(ev);
          }
        }
        if (job && !["queued", "running", "cancelling"].includes(job.state)) return;
      } catch (e) {
        if (abort.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };

  let started = false;
  every(1000, async () => {
    const r = await api("GET", "/v1/jobs/" + id);
    if (r.status === 404) {
      show(el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")),
        el("h2", { id: "not-found" }, "Job not found"),
        el("p", {}, "No job with this id belongs to your tenant."));
      leave.forEach((f) => f());
      leave = [];
      return;
    }
    if (r.status !== 200) {
      status("Could not read the job: " + message(r));
      return;
    }
    const wasActive = !job || ["queued", "running", "cancelling"].includes(job.state);
    job = r.body;
    // Results grow while the job runs: read the pages after the last one shown.
    for (let page = 0; page < 20; page++) {
      const res = await api("GET", `/v1/jobs/${id}/results?after=${last}&limit=500`);
      if (res.status !== 200) break;
      for (const entry of res.body.data) {
        last = entry.seq;
        kept += 1;
        ledgerBody.append(el("tr", { "data-seq": entry.seq },
          el("td", {}, entry.seq), el("td", {}, el("code", {}, JSON.stringify(entry.item))),
          el("td", {}, entry.cost), el("td", { class: "wide" }, when(entry.delivered_at))));
      }
      if (!res.body.has_more) break;
    }
    if (job.on_cancel === "discard" && job.state === "cancelled") ledgerBody.replaceChildren();
    render();
    status(`${kept} result(s) shown · updated ${new Date().toLocaleTimeString()}`);
    if (!started) {
      started = true;
      follow();
    }
    if (!wasActive && !["queued", "running", "cancelling"].includes(job.state)) {
      // Terminal and shown: stop polling.
      leave.forEach((f) => f());
      leave = [];
    }
  });
}

// ---- groups -------------------------------------------------------------------------------

function groupView(name) {
  const list = el("div", {});
  const cancelButton = el("button", {
    type: "button", class: "danger", id: "cancel-group",
    onclick: async () => {
      if (!(await ask(`Cancel every active job of group ${name}? What they delivered is kept and billed.`, "Cancel the group"))) return;
      const r = await api("POST", `/v1/groups/${encodeURIComponent(name)}/cancel`);
      status(r.status === 200 ? `Cancelled ${r.body.data.length} job(s).` : "Refused: " + message(r));
    },
  }, "Cancel group");
  show(el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")), el("h2", {}, "Group ", el("span", { class: "mono" }, name)),
    el("div", { class: "row" }, cancelButton), list, el("p", { id: "status", class: "muted" }));
  every(2000, async () => {
    const r = await api("GET", "/v1/jobs?limit=200&group=" + encodeURIComponent(name));
    if (r.status !== 200) {
      list.replaceChildren(el("p", { class: "error" }, message(r)));
      return;
    }
    list.replaceChildren(jobsTable(r.body.data, `${r.body.data.length} job(s)`));
  });
}

// ---- operations (admin keys) --------------------------------------------------------------

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]] = pair[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function sum(metrics, name) {
  return metrics.filter((m) => m.name === name).reduce((a, m) => a + m.value, 0);
}

// A bar chart of the last 60 values, scaled to the largest (at least 1).
function bars(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 600, h = 120, bw = w / 60;
  const top = Math.max(1, ...values);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  values.forEach((v, i) => {
    const rect = document.createElementNS(ns, "rect");
    const bh = (v / top) * (h - 4);
    rect.setAttribute("x", String(i * bw));
    rect.setAttribute("y", String(h - bh));
    rect.setAttribute("width", String(bw - 1));
    rect.setAttribute("height", String(bh));
    rect.setAttribute("fill", "#0b5cad");
    svg.append(rect);
  });
  return svg;
}

function opsView() {
  if (!me || !me.admin) {
    show(el("h2", {}, "Operations"), el("p", { class: "error" }, "Only admin keys see this page."));
    return;
  }
  const samples = [];
  const active = [];
  const activeChart = el("div", { id: "active-chart" });
  const counts = el("div", {});
  const chart = el("div", {});
  const histo = el("div", {});
  const store = el("p", {});
  show(el("h2", {}, "Operations"), counts, el("h3", {}, "Active jobs (queued, running, cancelling)"), activeChart,
    el("h3", {}, "Throughput (jobs finished per second, this node)"), chart,
    el("h3", {}, "Cancel latency (request to terminal)"), histo, el("h3", {}, "Store"), store,
    el("p", { id: "status", class: "muted" }));
  every(2000, async () => {
    const [stats, metrics] = await Promise.all([api("GET", "/v1/stats"), api("GET", "/metrics")]);
    if (stats.status === 200) {
      counts.replaceChildren(countsList(stats.body.counts));
      active.push(stats.body.counts);
      while (active.length > 60) active.shift();
      fill(activeChart, el("p", { class: "muted" },
        `queued ${stats.body.counts.queued}, running ${stats.body.counts.running}, cancelling ${stats.body.counts.cancelling}`),
      bars(active.map((c) => c.queued + c.running + c.cancelling), "Active jobs over time"));
    }
    if (metrics.status !== 200) {
      store.textContent = "Metrics unavailable: " + message(metrics);
      return;
    }
    const m = parseMetrics(metrics.text);
    samples.push({ t: Date.now(), finished: sum(m, "haltway_jobs_finished_total"), submitted: sum(m, "haltway_jobs_submitted_total") });
    while (samples.length > 60) samples.shift();
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].t - samples[i - 1].t) / 1000;
      rates.push(dt > 0 ? (samples[i].finished - samples[i - 1].finished) / dt : 0);
    }
    const peak = rates.length ? Math.max(...rates) : 0;
    chart.replaceChildren(el("p", { class: "muted" }, rates.length
      ? `now ${rates[rates.length - 1].toFixed(1)}/s, peak ${peak.toFixed(1)}/s over the last ${Math.round((samples[samples.length - 1].t - samples[0].t) / 1000)} s`
      : "collecting samples…"));
    chart.append(bars(rates, "Jobs finished per second"));
    const buckets = m.filter((x) => x.name === "haltway_cancel_latency_seconds_bucket");
    let previous = 0;
    histo.replaceChildren(el("div", { class: "scroll" }, el("table", { id: "cancel-latency" },
      el("thead", {}, el("tr", {}, el("th", {}, "Up to"), el("th", {}, "Cancels"))),
      el("tbody", {}, buckets.map((b) => {
        const n = b.value - previous;
        previous = b.value;
        return el("tr", {}, el("td", {}, b.labels.le === "+Inf" ? "more" : b.labels.le + " s"), el("td", {}, n));
      })))));
    const reachable = m.find((x) => x.name === "haltway_store_reachable");
    store.textContent = `reachable: ${reachable && reachable.value === 1 ? "yes" : "no"} · errors ${sum(m, "haltway_store_errors_total")} · outages ${sum(m, "haltway_store_outages_total")} · running on this node ${sum(m, "haltway_jobs_running")}`;
    status("Updated " + new Date().toLocaleTimeString());
  });
}

// ---- routing ------------------------------------------------------------------------------

async function route(why) {
  leave.forEach((f) => f());
  leave = [];
  if (!sessionStorage.getItem(KEY)) {
    signIn(why);
    return;
  }
  if (!(await whoAmI())) {
    if (sessionStorage.getItem(KEY)) signOut("Could not reach the server.");
    return;
  }
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) jobView(decodeURIComponent(parts[1]));
  else if (parts[0] === "groups" && parts[1]) groupView(decodeURIComponent(parts[1]));
  else if (parts[0] === "ops") opsView();
  else jobsView(new URLSearchParams(query || ""));
  view.focus();
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", () => route());
route();

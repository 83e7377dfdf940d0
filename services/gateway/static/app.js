// The live fleet page: sign in, load the fleet over the REST API, then keep it current from
// the server-sent events of /api/events. No build step, no dependencies, no inline script
// (the gateway's Content-Security-Policy forbids them).
"use strict";

(() => {
  const PAGE_SIZE = 1000;
  const RECENT_MAX = 50;
  const KEY = "acuvim.live.tokens";
  const LIVE_EVENTS = [
    "device_registered", "device_updated", "device_deleted", "device_status_changed",
    "heartbeat_received", "telemetry_received", "alert_created", "alert_updated",
    "alert_resolved", "command_updated", "config_reported", "firmware_rollout_updated",
  ];

  const state = {
    tokens: JSON.parse(sessionStorage.getItem(KEY) || "null"),
    devices: new Map(), // device_id -> row fields
    openAlerts: new Map(), // device_id -> Set of open alert ids
    source: null,
    lastEventId: null,
  };
  const $ = (selector) => document.querySelector(selector);

  // -- REST -------------------------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
    if (state.tokens) headers.Authorization = `Bearer ${state.tokens.access_token}`;
    const reply = await fetch(path, { ...options, headers });
    if (reply.status === 401 && state.tokens && !options.retried && await refresh()) {
      return api(path, { ...options, retried: true });
    }
    if (!reply.ok) {
      const problem = await reply.json().catch(() => ({}));
      throw new Error(problem.detail || problem.title || `HTTP ${reply.status}`);
    }
    return reply.status === 204 ? null : reply.json();
  }

  function keepTokens(tokens) {
    state.tokens = tokens;
    if (tokens) sessionStorage.setItem(KEY, JSON.stringify(tokens));
    else sessionStorage.removeItem(KEY);
  }

  async function refresh() {
    const reply = await fetch("/api/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: state.tokens.refresh_token }),
    });
    if (!reply.ok) { signOut("Your session ended; sign in again."); return false; }
    keepTokens(await reply.json());
    return true;
  }

  async function loadFleet() {
    const [devices, alerts] = await Promise.all([
      api(`/api/devices?limit=${PAGE_SIZE}`),
      api(`/api/alerts?state=open&limit=${PAGE_SIZE}`),
    ]);
    state.devices.clear();
    state.openAlerts.clear();
    for (const device of devices.items) state.devices.set(device.device_id, fromRecord(device));
    for (const alert of alerts.items) openAlert(alert.device_id, alert.id);
    renderFleet();
  }

  // -- the fleet table --------------------------------------------------------------------
  function fromRecord(d) {
    return {
      device_id: d.device_id, name: d.name, status: d.status,
      last_heartbeat: d.last_heartbeat, signal: d.signal_strength,
      firmware: d.firmware_version,
    };
  }

  function upsert(deviceId, fields) {
    const row = state.devices.get(deviceId) || { device_id: deviceId, status: "unknown" };
    for (const [key, value] of Object.entries(fields)) if (value !== undefined) row[key] = value;
    state.devices.set(deviceId, row);
    renderRow(row, true);
  }

  function openAlert(deviceId, alertId) {
    if (!state.openAlerts.has(deviceId)) state.openAlerts.set(deviceId, new Set());
    state.openAlerts.get(deviceId).add(alertId);
  }

  function cells(row) {
    return {
      device_id: row.device_id, name: row.name || "", status: row.status || "",
      last_heartbeat: when(row.last_heartbeat), signal: row.signal == null ? "" : `${row.signal} dBm`,
      firmware: row.firmware || "", open_alerts: String((state.openAlerts.get(row.device_id) || []).size || 0),
    };
  }

  function renderFleet() {
    const body = $("#fleet tbody");
    body.replaceChildren();
    const ids = [...state.devices.keys()].sort();
    for (const id of ids) renderRow(state.devices.get(id), false);
    $("#device-count").textContent = `(${state.devices.size})`;
  }

  function renderRow(row, flash) {
    const body = $("#fleet tbody");
    let tr = body.querySelector(`tr[data-device-id="${CSS.escape(row.device_id)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.deviceId = row.device_id;
      const next = [...body.children].find((r) => r.dataset.deviceId > row.device_id);
      body.insertBefore(tr, next || null);
    }
    const values = cells(row);
    tr.replaceChildren(...Object.entries(values).map(([field, value]) => {
      const td = document.createElement("td");
      td.dataset.field = field;
      td.dataset.value = value;
      td.textContent = value;
      return td;
    }));
    if (flash) { tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash"); }
    $("#device-count").textContent = `(${state.devices.size})`;
  }

  function removeRow(deviceId) {
    state.devices.delete(deviceId);
    const tr = $(`#fleet tr[data-device-id="${CSS.escape(deviceId)}"]`);
    if (tr) tr.remove();
    $("#device-count").textContent = `(${state.devices.size})`;
  }

  function when(value) {
    if (value == null) return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().slice(0, 19) + "Z";
  }

  // -- live events ------------------------------------------------------------------------
  const apply = {
    device_registered: (d) => upsert(d.device_id, fromRecord(d.device)),
    device_updated: (d) => upsert(d.device_id, fromRecord(d.device)),
    device_deleted: (d) => removeRow(d.device_id),
    device_status_changed: (d) => upsert(d.device_id, { status: d.new_status }),
    heartbeat_received: (d) => upsert(d.device_id, {
      last_heartbeat: d.heartbeat.received_at,
      signal: d.heartbeat.signal_strength ?? undefined,
      firmware: d.heartbeat.firmware_version ?? undefined,
    }),
    alert_created: (d) => { openAlert(d.device_id, d.alert.id); upsert(d.device_id, {}); },
    alert_resolved: (d) => {
      const open = state.openAlerts.get(d.device_id);
      if (open) open.delete(d.alert.id);
      upsert(d.device_id, {});
    },
  };

  function onEvent(message) {
    if (message.lastEventId) state.lastEventId = message.lastEventId;
    const data = JSON.parse(message.data);
    const handler = apply[message.type];
    if (handler && data.device_id) handler(data);
    addRecent(message.type, data, message.lastEventId);
  }

  function addRecent(name, data, id) {
    const li = document.createElement("li");
    li.dataset.event = name;
    li.dataset.eventId = id || "";
    li.dataset.deviceId = data.device_id || data.rollout_id || "";
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    li.append(time, label, ` ${li.dataset.deviceId} ${summary(name, data)}`);
    const list = $("#events");
    list.prepend(li);
    while (list.children.length > RECENT_MAX) list.lastChild.remove();
  }

  function summary(name, data) {
    if (name === "device_status_changed") return `${data.old_status || "-"} → ${data.new_status}`;
    if (name.startsWith("alert_")) return `${data.alert.alert_type || ""} ${data.alert.severity || ""}`;
    if (name === "command_updated") return `${data.command} ${data.status}`;
    if (name === "telemetry_received") return `${data.readings} reading(s)`;
    if (name === "firmware_rollout_updated") return `${data.version} ${data.state}`;
    return "";
  }

  function setLive(stateName, text) {
    const badge = $("#live");
    badge.dataset.state = stateName;
    badge.textContent = text;
  }

  // Manual (re)connections pass the last id as a query parameter; EventSource's own
  // reconnections send it in the Last-Event-ID header.
  function connect() {
    disconnect();
    const query = new URLSearchParams({ access_token: state.tokens.access_token });
    if (state.lastEventId) query.set("last_event_id", state.lastEventId);
    const source = new EventSource(`/api/events?${query}`);
    state.source = source;
    setLive("connecting", "connecting");
    source.onopen = () => setLive("live", "live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) setLive("off", "disconnected");
      else setLive("connecting", "reconnecting");
    };
    for (const name of LIVE_EVENTS) source.addEventListener(name, onEvent);
    source.addEventListener("reset", (message) => {
      state.lastEventId = message.lastEventId;
      addRecent("reset", {}, message.lastEventId);
      loadFleet().catch(showError);
    });
    source.addEventListener("token_expired", async () => {
      disconnect();
      if (await refresh()) connect();
    });
  }

  function disconnect() {
    if (state.source) state.source.close();
    state.source = null;
    setLive("off", "not connected");
  }

  // -- sign in / out ----------------------------------------------------------------------
  async function start() {
    $("#sign-in").hidden = true;
    $("#console").hidden = false;
    $("#sign-out").hidden = false;
    await loadFleet();
    connect();
  }

  function signOut(reason = "") {
    disconnect();
    keepTokens(null);
    $("#console").hidden = true;
    $("#sign-out").hidden = true;
    $("#sign-in").hidden = false;
    $("#login-error").textContent = reason;
  }

  function showError(error) {
    $("#login-error").textContent = error.message;
  }

  $("#login-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    $("#login-error").textContent = "";
    try {
      keepTokens(await api("/api/auth/login", {
        method: "POST",
        body: JSON.stringify({ email: $("#email").value, password: $("#password").value }),
      }));
      await start();
    } catch (error) {
      keepTokens(null);
      showError(error);
    }
  });
  $("#sign-out").addEventListener("click", () => {
    if (state.tokens) {
      api("/api/auth/logout", {
        method: "POST", body: JSON.stringify({ refresh_token: state.tokens.refresh_token }),
      }).catch(() => {});
    }
    signOut();
  });

  // For operators' tools and the browser test: drop and restore the stream.
  window.acuvimLive = {
    connect, disconnect,
    get lastEventId() { return state.lastEventId; },
    get connected() { return state.source !== null && state.source.readyState === EventSource.OPEN; },
  };

  if (state.tokens) start().catch(() => signOut());
})();

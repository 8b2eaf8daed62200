// Diquis tenant page: live updates through the notification hub (official @microsoft/signalr
// client, served by this app), toasts for the four tenant events, rows replaced in place, and
// missed notifications fetched after every (re)connect. Authenticated by the session cookie.
(function () {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const storageKey = "diquis.lastNotificationId";
  // The first page of a tab starts from the server's latest id; every later page from the last
  // id this tab knew, so that the events of an action (a form post, then the next page) show
  // even when the job finished before the next page was connected.
  const stored = sessionStorage.getItem(storageKey);
  let lastId = stored !== null ? Number(stored) || 0 : Number(meta("diquis-last-notification-id") || 0);
  sessionStorage.setItem(storageKey, String(lastId));
  // A tab away for long catches up quietly but for the newest few toasts.
  const CATCH_UP_TOASTS = 5;
  const seen = new Set();
  const status = document.getElementById("hub-status");

  function setStatus(text, connected) {
    if (!status) return;
    status.textContent = text;
    status.className = connected ? "connected" : "disconnected";
  }

  async function refreshRow(tenantId) {
    if (!tenantId) return;
    const table = document.getElementById("tenant-rows");
    if (!table) return;
    const response = await fetch(`/tenants/${encodeURIComponent(tenantId)}/row`, { credentials: "same-origin" });
    if (!response.ok) return;
    const html = (await response.text()).trim();
    const template = document.createElement("template");
    template.innerHTML = html;
    const row = template.content.firstElementChild;
    const existing = document.getElementById(`tenant-${tenantId}`);
    if (existing) existing.replaceWith(row);
    else table.prepend(row);
  }

  function handle(event, data, quiet) {
    if (!data || typeof data.id !== "number") return;
    if (seen.has(data.id)) return; // a repeat (same id) after a reconnect or a re-publish
    seen.add(data.id);
    if (data.id > lastId) {
      lastId = data.id;
      sessionStorage.setItem(storageKey, String(lastId));
    }
    if (quiet) {
      // rows are refreshed below; no toast
    } else if (data.type === "success") toastr.success(data.message);
    else toastr.error(data.message);
    document.dispatchEvent(new CustomEvent("diquis:notification", { detail: { event, data } }));
    refreshRow(data.tenantId).catch((e) => console.error("row refresh failed", e));
  }

  async function catchUp() {
    // Page by page (the API answers at most 200 at a time) until nothing newer is left; then
    // toast only the newest few: a tab away for long catches up quietly.
    const missed = [];
    let after = lastId;
    for (;;) {
      const response = await fetch(`/api/notifications?after=${after}`, { credentials: "same-origin" });
      if (!response.ok) break;
      const page = (await response.json()).data || [];
      for (const n of page) if (n.data && !seen.has(n.data.id)) missed.push(n);
      const newest = page.length > 0 ? page[page.length - 1].id : after;
      if (page.length < 200 || !(newest > after)) break;
      after = newest;
    }
    const quietCount = Math.max(0, missed.length - CATCH_UP_TOASTS);
    if (quietCount > 0) toastr.info(`${quietCount} earlier notifications while this page was away`);
    missed.forEach((n, i) => handle(n.event, n.data, i < quietCount));
  }

  const connection = new signalR.HubConnectionBuilder()
    .withUrl("/hubs/notifications")
    .withAutomaticReconnect([0, 2000, 10000, 30000])
    .build();

  for (const event of ["TenantCreated", "TenantCreationFailed", "TenantUpdated", "TenantUpdateFailed"]) {
    connection.on(event, (data) => handle(event, data));
  }
  connection.on("Connected", (message) => console.log("hub:", message));
  connection.onreconnecting(() => setStatus("reconnecting…", false));
  connection.onreconnected(() => {
    setStatus("live", true);
    catchUp().catch((e) => console.error("catch-up failed", e));
  });
  connection.onclose(() => setStatus("offline — reload the page", false));

  async function start() {
    try {
      await connection.start();
      setStatus("live", true);
      window.diquisConnected = true;
      document.dispatchEvent(new CustomEvent("diquis:connected"));
      await catchUp();
    } catch (e) {
      console.error("hub connection failed", e);
      setStatus("offline — retrying", false);
      setTimeout(start, 5000);
    }
  }
  // The create form posts through the API (no page load): the new row appears at once with its
  // spinner and turns Active when the event arrives. Without JavaScript the form posts normally.
  const form = document.querySelector("#create form");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearProblems();
      const data = new FormData(form);
      const body = {
        id: data.get("id"), name: data.get("name"), adminEmail: data.get("adminEmail"),
        password: data.get("password"), hasIsolatedDatabase: data.get("hasIsolatedDatabase") === "on",
      };
      const response = await fetch("/api/tenants", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": meta("csrf-token") },
        body: JSON.stringify(body),
      });
      const result = await response.json().catch(() => ({ messages: [`HTTP ${response.status}`] }));
      if (response.status === 202) {
        form.reset();
        toastr.info(result.messages.join(" "));
        await refreshRow(body.id);
      } else {
        showProblems(result.messages || []);
      }
    });
  }

  // The form's fields: the API's name → the label the form shows (as the server renders them).
  const FIELD_LABELS = { id: "Id", name: "Name", adminEmail: "Admin email", password: "Admin password", hasIsolatedDatabase: "Isolated database" };

  // Problems of the last submit go away as the next one starts.
  function clearProblems() {
    const summary = document.getElementById("create-problems");
    if (summary) summary.innerHTML = "";
    for (const p of document.querySelectorAll("#create .field-error")) p.remove();
    for (const input of document.querySelectorAll("#create [aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  // Each problem next to its field, in the label's words; the rest in the box above the form.
  function showProblems(messages) {
    const general = [];
    for (const message of messages) {
      const m = /^'([A-Za-z]+)'(.*)$/s.exec(message);
      const input = m && FIELD_LABELS[m[1]] ? document.getElementById(m[1]) : null;
      if (!input) {
        general.push(message);
        continue;
      }
      const id = `${m[1]}-error`;
      let p = document.getElementById(id);
      if (!p) {
        p = document.createElement("p");
        p.className = "field-error";
        p.id = id;
        const after = input.closest("label.check") || (input.nextElementSibling && input.nextElementSibling.classList.contains("hint") ? input.nextElementSibling : input);
        after.after(p);
      }
      p.textContent = `${p.textContent ? p.textContent + " " : ""}${FIELD_LABELS[m[1]]}${m[2]}`;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
    }
    const summary = document.getElementById("create-problems");
    if (summary && general.length > 0) {
      summary.innerHTML = `<div class="problems" role="alert"><ul>${general.map((g) => `<li>${escapeHtml(g)}</li>`).join("")}</ul></div>`;
    }
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // escapeHtml: event texts are user-written (tenant names) and must show as text.
  toastr.options = { positionClass: "toast-bottom-right", timeOut: 6000, newestOnTop: true, escapeHtml: true };
  window.diquisConnection = connection;
  start();
})();

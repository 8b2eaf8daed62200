// Diquis tenant page: live updates through the notification hub (official @microsoft/signalr
// client, served by this app), toasts for the four tenant events, rows replaced in place, and
// missed notifications fetched after every (re)connect. Authenticated by the session cookie.
(function () {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const storageKey = "diquis.lastNotificationId";
  let lastId = Math.max(Number(meta("diquis-last-notification-id") || 0), Number(sessionStorage.getItem(storageKey) || 0));
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

  function handle(event, data) {
    if (!data || typeof data.id !== "number") return;
    if (seen.has(data.id)) return; // a repeat (same id) after a reconnect or a re-publish
    seen.add(data.id);
    if (data.id > lastId) {
      lastId = data.id;
      sessionStorage.setItem(storageKey, String(lastId));
    }
    if (data.type === "success") toastr.success(data.message);
    else toastr.error(data.message);
    document.dispatchEvent(new CustomEvent("diquis:notification", { detail: { event, data } }));
    refreshRow(data.tenantId).catch((e) => console.error("row refresh failed", e));
  }

  async function catchUp() {
    // Page by page (the API answers at most 200 at a time) until nothing newer is left.
    for (;;) {
      const response = await fetch(`/api/notifications?after=${lastId}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = (await response.json()).data || [];
      const before = lastId;
      for (const n of page) handle(n.event, n.data);
      if (page.length < 200 || lastId === before) return;
    }
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
      const problems = document.getElementById("create-problems");
      if (response.status === 202) {
        if (problems) problems.innerHTML = "";
        form.reset();
        toastr.info(result.messages.join(" "));
        await refreshRow(body.id);
      } else if (problems) {
        problems.innerHTML = `<div class="problems" role="alert"><ul>${(result.messages || []).map((m) => `<li>${escapeHtml(m)}</li>`).join("")}</ul></div>`;
      }
    });
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  toastr.options = { positionClass: "toast-bottom-right", timeOut: 6000, newestOnTop: true };
  window.diquisConnection = connection;
  start();
})();

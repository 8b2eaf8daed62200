// Jobs dashboard: the page is server-rendered and works without this script. With it, the
// page's live parts (elements with data-live and an id: counts, graphs, rows) are refreshed in
// place from the same URL whenever the hub signals that jobs changed (through the app's own
// SignalR hub and its backplane, so changes on every node show), or every 5 seconds when no hub
// is configured. Rows the user has ticked are left alone until the selection is cleared.
(function () {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  let running = false;
  let again = false;
  let lastRun = 0;
  const MIN_INTERVAL_MS = 500;

  const selected = () => document.querySelectorAll('input[name="ids"]:checked').length;

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      const wait = lastRun + MIN_INTERVAL_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      lastRun = Date.now();
      const response = await fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "jobs-dashboard" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const fresh of doc.querySelectorAll("[data-live][id]")) {
        const current = document.getElementById(fresh.id);
        if (!current) continue;
        if (current.querySelector('input[name="ids"]:checked')) continue;
        if (current.innerHTML !== fresh.innerHTML) current.innerHTML = fresh.innerHTML;
      }
      document.documentElement.dataset.refreshed = String(Number(document.documentElement.dataset.refreshed || 0) + 1);
    } catch (e) {
      console.error("jobs dashboard refresh failed", e);
    } finally {
      running = false;
      if (again) { again = false; refresh(); }
    }
  }

  function connectHub(url, event) {
    const status = document.getElementById("hub-status");
    const setStatus = (text, ok) => { if (status) { status.textContent = text; status.className = ok ? "connected" : "disconnected"; } };
    const connection = new signalR.HubConnectionBuilder().withUrl(url).withAutomaticReconnect([0, 2000, 10000, 30000]).build();
    connection.on(event, () => refresh());
    connection.onreconnecting(() => setStatus("Reconnecting…", false));
    connection.onreconnected(() => { setStatus("Live", true); refresh(); });
    connection.onclose(() => { setStatus("Offline", false); setTimeout(start, 5000); });
    async function start() {
      try {
        await connection.start();
        setStatus("Live", true);
        document.documentElement.dataset.live = "hub";
        refresh();
      } catch (e) {
        setStatus("Offline", false);
        setTimeout(start, 5000);
      }
    }
    start();
  }

  // Select all (the checkbox is hidden without JavaScript).
  const all = document.getElementById("select-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = all.checked;
    });
  }
  // Bulk buttons ask before acting on nothing.
  const form = document.getElementById("bulk-form");
  if (form) {
    form.addEventListener("submit", (e) => {
      if (selected() === 0) e.preventDefault();
    });
  }

  const hub = meta("jobs-hub");
  if (hub && window.signalR) connectHub(hub, meta("jobs-hub-event") || "JobsChanged");
  else { document.documentElement.dataset.live = "poll"; setInterval(refresh, 5000); }
  // The realtime graph's window moves with the clock even while nothing changes.
  if (document.getElementById("graph-realtime")) setInterval(refresh, 10000);
})();

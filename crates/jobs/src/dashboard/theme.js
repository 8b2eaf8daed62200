// Light and dark themes: the OS preference (prefers-color-scheme) unless the user chose one with
// the #theme-toggle button; the choice is kept in localStorage and applied before paint.
(function () {
  "use strict";
  if (window.diquisTheme) return; // loaded twice (the app's layout and the dashboard)
  window.diquisTheme = true;
  const key = "diquis.theme";
  const root = document.documentElement;
  let chosen = null;
  try { chosen = localStorage.getItem(key); } catch (e) { /* storage off */ }
  if (chosen === "dark" || chosen === "light") root.setAttribute("data-theme", chosen);
  const effective = () => root.getAttribute("data-theme") ||
    (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  function wire() {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const label = () => {
      const next = effective() === "dark" ? "light" : "dark";
      button.textContent = next === "dark" ? "Dark theme" : "Light theme";
      button.setAttribute("aria-label", `Switch to the ${next} theme`);
    };
    label();
    button.hidden = false;
    button.addEventListener("click", () => {
      const next = effective() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem(key, next); } catch (e) { /* storage off */ }
      label();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();

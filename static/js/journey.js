// The journey panel remembers whether it was collapsed (per browser); it never opens itself again.
(function () {
  var panel = document.getElementById("journey");
  if (!panel) return;
  var key = "leanvibe.journey.collapsed";
  try {
    if (window.localStorage.getItem(key) === "1") panel.removeAttribute("open");
    panel.addEventListener("toggle", function () {
      window.localStorage.setItem(key, panel.open ? "0" : "1");
    });
  } catch (e) {
    // Storage refused (private mode): the panel simply starts open.
  }
})();

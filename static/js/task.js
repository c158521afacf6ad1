// The task page: follows the task's events (JSON pages, ?after=<seq>) until its "done" event,
// updating the progress bar, the step timeline and the model's streamed output. When the task is
// done the page reloads once, to show its files (highlighted on the server) and quality report.
(function () {
  "use strict";
  var root = document.getElementById("task-root");
  if (!root || root.dataset.finished) { return; }
  var url = root.dataset.eventsUrl;
  var after = parseInt(root.dataset.after || "0", 10);
  var fill = document.getElementById("task-progress-fill");
  var bar = document.getElementById("task-progress");
  var value = document.getElementById("task-progress-value");
  var steps = document.getElementById("task-steps");
  var output = document.getElementById("model-output");
  var badge = document.querySelector("#task-status-badge .task-status");
  var errorBox = document.getElementById("task-error");

  function setProgress(p) {
    fill.setAttribute("width", p + "%");
    bar.setAttribute("aria-valuenow", String(p));
    value.textContent = p + "%";
  }

  function setStatus(status) {
    if (!badge) { return; }
    badge.dataset.status = status;
    badge.className = "badge task-status task-status-" + status;
    badge.textContent = status.replace("_", " ").replace(/^./, function (c) { return c.toUpperCase(); });
    root.dataset.status = status;
  }

  function stepItem(data) {
    var selector = 'li[data-step="' + data.step + '"][data-attempt="' + data.attempt + '"]';
    var li = steps.querySelector(selector);
    if (!li) {
      li = document.createElement("li");
      li.dataset.step = data.step;
      li.dataset.attempt = String(data.attempt);
      var name = document.createElement("span");
      name.className = "step-name";
      name.textContent = data.step + (data.attempt > 1 ? " #" + data.attempt : "");
      var status = document.createElement("span");
      status.className = "step-status";
      var meta = document.createElement("span");
      meta.className = "step-meta muted small";
      li.appendChild(name); li.appendChild(document.createTextNode(" "));
      li.appendChild(status); li.appendChild(document.createTextNode(" "));
      li.appendChild(meta);
      steps.appendChild(li);
    }
    return li;
  }

  function handle(event) {
    var d = event.data || {};
    if (event.type === "progress") { setProgress(d.progress); }
    else if (event.type === "status") { setStatus(d.status); }
    else if (event.type === "step" && d.status === "running") {
      var li = stepItem(d);
      li.className = "timeline-step step-running";
      li.querySelector(".step-status").textContent = "running";
      if (output.textContent) { output.textContent += "\n"; }
      output.textContent += "── " + d.step + " ──\n";
    } else if (event.type === "step") {
      var done = stepItem(d);
      done.className = "timeline-step step-" + d.status;
      done.querySelector(".step-status").textContent = d.status;
      done.querySelector(".step-meta").textContent =
        d.tokens_in + " → " + d.tokens_out + " tokens · " + d.duration_ms + " ms";
    } else if (event.type === "tokens") {
      output.textContent += d.text;
      output.scrollTop = output.scrollHeight;
    } else if (event.type === "done") {
      setStatus(d.status);
      if (d.error) { errorBox.textContent = d.error; errorBox.classList.remove("hidden"); }
    }
  }

  function poll() {
    fetch(url + "?after=" + after, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (page) {
        page.events.forEach(handle);
        after = page.next;
        if (page.done) { window.location.reload(); return; }
        if (typeof page.progress_percentage === "number") { setProgress(page.progress_percentage); }
        window.setTimeout(poll, page.events.length ? 300 : 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();

// connectzap console: the pages work without this file. It asks before a bulk action (forms with
// data-confirm), and keeps the overview's (or a campaign's) numbers current (the element with data-live names the
// JSON to poll; each number's element has the id the JSON gives it).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

(function () {
  var note = document.querySelector("[data-live]");
  if (!note || !window.fetch) {
    return;
  }
  var url = note.getAttribute("data-live");
  function refresh() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (!data) {
          note.textContent = "Live numbers stopped: reload the page.";
          return;
        }
        Object.keys(data.numbers).forEach(function (id) {
          var cell = document.getElementById(id);
          if (cell) {
            cell.textContent = String(data.numbers[id]);
          }
        });
        note.textContent = "Numbers updated " + new Date().toLocaleTimeString() + "; a new status needs a reload.";
      })
      .catch(function () { note.textContent = "Live numbers stopped: reload the page."; });
  }
  window.setInterval(refresh, 5000);
})();

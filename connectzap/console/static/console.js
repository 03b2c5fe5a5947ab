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

// The consent import (a form with data-progress): posted in the background, so the page shows the
// upload, then lines checked and rows written as the server reports them (one JSON object a line),
// then the result. Without this script the form posts as usual and the answer is the result page.
(function () {
  var form = document.querySelector("form[data-progress]");
  if (!form || !window.XMLHttpRequest || !window.FormData) {
    return;
  }
  var text = document.getElementById("import-progress-text");
  var bar = document.getElementById("import-progress");
  var result = document.getElementById("import-result");
  function show(words, done, of) {
    text.hidden = false;
    text.textContent = words;
    bar.hidden = false;
    if (of) {
      bar.max = of;
      bar.value = done;
    } else {
      bar.removeAttribute("value");
    }
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var request = new XMLHttpRequest();
    var read = 0;
    button.disabled = true;
    result.textContent = "";
    function lines() {
      var body = request.responseText;
      var end = body.lastIndexOf("\n");
      if (end < read) {
        return;
      }
      body.slice(read, end).split("\n").forEach(function (line) {
        if (!line) {
          return;
        }
        var said = JSON.parse(line);
        if (said.phase === "checking") {
          show("Checking: " + said.lines + " lines read", 0, 0);
        } else if (said.phase === "importing") {
          show("Importing: " + said.done + " of " + said.of + " lines written", said.done, said.of);
        } else if (said.phase === "done") {
          text.textContent = said.ok ? "Import finished." : "Nothing was imported.";
          bar.hidden = true;
          result.innerHTML = said.html;  // rendered and escaped by the server's template
        }
      });
      read = end + 1;
    }
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        show("Uploading: " + Math.round(100 * e.loaded / e.total) + "%", e.loaded, e.total);
      }
    });
    request.addEventListener("progress", lines);
    request.addEventListener("load", function () {
      button.disabled = false;
      if (request.status !== 200) {
        text.hidden = false;
        text.textContent = "The import was refused (HTTP " + request.status + "): reload the page and try again.";
        bar.hidden = true;
        return;
      }
      lines();
    });
    request.addEventListener("error", function () {
      button.disabled = false;
      text.hidden = false;
      text.textContent = "The connection broke: the import may still finish; look the contacts up to check.";
    });
    request.open("POST", form.action);
    request.setRequestHeader("X-Console-Progress", "1");
    request.send(new FormData(form));
  });
})();

// connectzap console: the pages work without this file. It only asks before a bulk action
// (forms with data-confirm), so a stray click cannot requeue a whole plugin's dead letters.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

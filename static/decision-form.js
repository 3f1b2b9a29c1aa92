/*
 * Checks the decision form before it is sent, with the contract's own messages
 * (read from the form's data- attributes). The server checks again and is the
 * authority; this only saves a round trip. No dependencies, no build step.
 */
(function () {
  "use strict";

  var form = document.querySelector("form.decision-form");
  if (!form) {
    return;
  }

  function showError(field, errorId, message) {
    var error = document.getElementById(errorId);
    if (error) {
      error.textContent = message || "";
      error.hidden = !message;
    }
    if (field) {
      if (message) {
        field.setAttribute("aria-invalid", "true");
      } else {
        field.removeAttribute("aria-invalid");
      }
    }
    return !message;
  }

  function checkReason() {
    var reason = form.elements.reason;
    var message = reason.value.trim() ? "" : form.dataset.msgReason;
    return showError(reason, "reason-error", message) ? null : reason;
  }

  function checkDuration() {
    var chosen = form.querySelector("input[name=duration_unit]:checked");
    var value = form.elements.duration_value;
    if (!chosen || !value) {
      return null;
    }
    var unit = chosen.value;
    var message = "";
    if (unit !== form.dataset.unitOnce) {
      var min = Number(form.dataset["min" + unit.charAt(0).toUpperCase() + unit.slice(1)]);
      var max = Number(form.dataset["max" + unit.charAt(0).toUpperCase() + unit.slice(1)]);
      var text = value.value.trim();
      var number = Number(text);
      if (!/^\d+$/.test(text) || number < min || number > max) {
        message = form.dataset["msg" + unit.charAt(0).toUpperCase() + unit.slice(1)];
      }
    }
    return showError(value, "duration_value-error", message) ? null : value;
  }

  function syncDurationInput() {
    var chosen = form.querySelector("input[name=duration_unit]:checked");
    var value = form.elements.duration_value;
    if (!chosen || !value) {
      return;
    }
    var once = chosen.value === form.dataset.unitOnce;
    value.disabled = once;
    if (once) {
      showError(value, "duration_value-error", "");
    }
  }

  form.addEventListener("submit", function (event) {
    var invalid = [checkReason(), checkDuration()].filter(Boolean);
    if (invalid.length) {
      event.preventDefault();
      invalid[0].focus();
    }
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "duration_unit") {
      syncDurationInput();
    }
  });
  syncDurationInput();
}());

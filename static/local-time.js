/*
 * Shows every <time class="local-time"> in the viewer's own time zone. The server
 * writes the time in UTC (text and title), so without JavaScript the page reads in
 * UTC; the title keeps the UTC time for hover. No dependencies, no build step.
 */
(function () {
  "use strict";

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function zoneName(date) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, {timeZoneName: "short"}).formatToParts(date);
      for (var i = 0; i < parts.length; i += 1) {
        if (parts[i].type === "timeZoneName") {
          return parts[i].value;
        }
      }
    } catch (error) {
      return "";
    }
    return "";
  }

  function localText(date) {
    var text = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    var zone = zoneName(date);
    return zone ? text + " " + zone : text;
  }

  function showLocal(root) {
    var times = (root || document).querySelectorAll("time.local-time[datetime]");
    for (var i = 0; i < times.length; i += 1) {
      var element = times[i];
      if (element.getAttribute("data-local") === element.getAttribute("datetime")) {
        continue;
      }
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) {
        continue;
      }
      element.textContent = localText(date);
      element.setAttribute("data-local", element.getAttribute("datetime"));
    }
  }

  showLocal(document);
  // Parts of a page replaced later (a live refresh) are shown in local time as well.
  document.addEventListener("htmx:afterSwap", function (event) {
    showLocal(event.target);
  });
})();

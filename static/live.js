/*
 * Live parts of a page: every element with data-live polls its hx-get (htmx, vendored in
 * static/vendor/). Each poll says it is a background refresh (so it does not keep an idle
 * session alive) and sends the ETag of what the element last received, so an unchanged
 * part answers 304 and nothing is swapped. No dependencies beyond htmx, no build step.
 */
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (event) {
    var element = event.detail.elt;
    if (!element || !element.hasAttribute("data-live")) {
      return;
    }
    event.detail.headers["X-Background-Refresh"] = "1";
    var etag = element.getAttribute("data-etag");
    if (etag) {
      event.detail.headers["If-None-Match"] = etag;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var element = event.detail.elt;
    var xhr = event.detail.xhr;
    if (!element || !xhr || !element.hasAttribute("data-live")) {
      return;
    }
    var etag = xhr.getResponseHeader("ETag");
    if (etag && xhr.status >= 200 && xhr.status < 300) {
      element.setAttribute("data-etag", etag);
    }
  });
}());

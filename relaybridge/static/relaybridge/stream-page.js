/*
 * relaybridge's page helpers around the stream: the CSRF token, replacing parts of
 * the page with the server's current rendering of them, and the comment form
 * marked data-relaybridge-comment-form posted with fetch (then the parts its
 * value names are replaced, so the page never reloads).
 *
 * Loaded as a classic script before stream.js (window.relaybridgeStreamPage).
 */
(function () {
  "use strict";
  if (window.relaybridgeStreamPage) return;

  function csrfToken(form) {
    var inputs = [
      form && form.querySelector("input[name=csrfmiddlewaretoken]"),
      document.querySelector("input[name=csrfmiddlewaretoken]"),
    ];
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i] && inputs[i].value) return inputs[i].value;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function swapFromDocument(doc, selectors) {
    for (var i = 0; i < selectors.length; i++) {
      var selector = selectors[i].trim();
      if (!selector) continue;
      var current = document.querySelector(selector);
      var fresh = doc.querySelector(selector);
      if (current && fresh) {
        current.parentNode.replaceChild(document.importNode(fresh, true), current);
      } else if (current) {
        current.parentNode.removeChild(current);
      }
    }
  }

  // What a refresh replaces: the comment form's data-relaybridge-comment-form list.
  function refreshSelectors() {
    var form = document.querySelector("form[data-relaybridge-comment-form]");
    var value = (form && form.getAttribute("data-relaybridge-comment-form")) ||
      "[data-relaybridge-comment-list]";
    return value.split(",");
  }

  // Replace the comment list with the server's current one, then re-apply live state.
  function refreshPage(afterSwap) {
    return fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html == null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        swapFromDocument(doc, refreshSelectors());
        afterSwap();
      })
      .catch(function () {
        /* the next snapshot or reload shows the page as it is */
      });
  }

  function submitComment(form, event, afterSwap) {
    event.preventDefault();
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    fetch(form.action || window.location.href, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "text/html" },
      body: new FormData(form),
    })
      .then(function (response) {
        var landed = new URL(response.url, window.location.href);
        if (response.redirected && landed.pathname !== window.location.pathname) {
          window.location.href = response.url; // e.g. signed out meanwhile
          return null;
        }
        return response.text().then(function (html) {
          return { status: response.status, html: html };
        });
      })
      .then(function (result) {
        if (!result) return;
        var doc = new DOMParser().parseFromString(result.html, "text/html");
        var oldAlert = form.querySelector("[role=alert]");
        if (oldAlert) oldAlert.parentNode.removeChild(oldAlert);
        if (result.status >= 400) {
          var fresh = form.id ? doc.getElementById(form.id) : null;
          var alert = fresh && fresh.querySelector("[role=alert]");
          var field = form.querySelector("textarea");
          if (alert && field) {
            field.insertAdjacentElement("afterend", document.importNode(alert, true));
          }
          return;
        }
        form.reset();
        swapFromDocument(doc, refreshSelectors());
        afterSwap();
      })
      .catch(function () {
        form.submit(); // fall back to the plain POST
      })
      .then(function () {
        if (button) button.disabled = false;
      });
  }

  window.relaybridgeStreamPage = {
    csrfToken: csrfToken,
    refreshPage: refreshPage,
    submitComment: submitComment,
  };
})();

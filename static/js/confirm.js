// A form with data-confirm asks before it is sent (Cancel, Re-run): one click must not
// stop an hour of training.
(function () {
  "use strict";
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  });
})();

// New experiment: show only the parameters of the chosen model and dataset.
(function () {
  "use strict";
  const form = document.getElementById("experiment-form");
  if (!form) return;
  function sync() {
    form.querySelectorAll("[data-show-when]").forEach((group) => {
      const [name, value] = group.dataset.showWhen.split("=");
      const field = form.elements[name];
      group.hidden = !field || field.value !== value;
    });
  }
  form.addEventListener("change", sync);
  sync();
})();

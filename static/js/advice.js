// New experiment: the advisor's warnings for the choices as they stand. On every change the
// form's fields go to the server (the same ones it submits), which applies the rules a run
// applies to its result; the answer replaces the advice box, hidden when there is nothing
// to say. Without this script the server renders the advice with the page.
(function () {
  "use strict";
  const form = document.getElementById("experiment-form");
  const box = document.getElementById("advice");
  if (!form || !box || !box.dataset.adviceUrl) return;
  const DEBOUNCE_MS = 250;
  let timer = null;
  let latest = 0;

  function show(html) {
    box.innerHTML = html;
    box.hidden = !html.trim();
  }

  function pending(errors) {
    // The choices the advice depends on are not valid yet: old advice would be wrong, so
    // say why there is none.
    const first = Object.values(errors || {}).flat()[0];
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = first ? `No advice until this is fixed: ${first}` : "No advice: the server did not answer.";
    box.replaceChildren(note);
    box.hidden = false;
  }

  async function refresh() {
    const ticket = ++latest;
    box.dataset.state = "loading";
    let response, data = null;
    try {
      response = await fetch(box.dataset.adviceUrl, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      data = await response.json();
    } catch (e) {
      data = null;  // offline, or a login page after the session expired
    }
    if (ticket !== latest) return;  // a newer request is on its way
    if (response && response.ok && data && typeof data.html === "string") show(data.html);
    else pending(data && data.errors);
    box.dataset.state = "ready";
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE_MS);
  }

  ["input", "change", "recipes:changed"].forEach((type) => form.addEventListener(type, schedule));
  // The browser may restore the fields of a reloaded page: advise for what it shows.
  refresh();
})();

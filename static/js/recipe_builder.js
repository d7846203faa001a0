// The recipe builder of the experiment form. The JSON textarea is the form's value; the
// builder only reads and writes it, so the form also works (and re-renders after an
// error) without this script.
(function () {
  "use strict";
  const textarea = document.getElementById("id_recipes_json");
  const list = document.getElementById("recipe-list");
  if (!textarea || !list) return;
  const catalog = JSON.parse(document.getElementById("technique-catalog").textContent);
  const presets = JSON.parse(document.getElementById("recipe-presets").textContent);
  const byName = Object.fromEntries(catalog.map((t) => [t.technique, t]));

  let recipes = [];
  try {
    const parsed = JSON.parse(textarea.value || "[]");
    if (Array.isArray(parsed)) recipes = parsed;
  } catch (e) {
    // Leave the text for the user to fix in the JSON editor; the server says what is wrong.
    textarea.closest("details").open = true;
    return;
  }

  function save() {
    textarea.value = recipes.length ? JSON.stringify(recipes, null, 1) : "";
    // Setting a value fires no event: tell the advisor (advice.js) that the recipes changed.
    textarea.dispatchEvent(new CustomEvent("recipes:changed", { bubbles: true }));
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    });
    children.flat().forEach((c) => node.append(c));
    return node;
  }

  function paramInput(step, param) {
    const value = step[param.name];
    const set = (v) => { if (v === undefined) delete step[param.name]; else step[param.name] = v; save(); };
    const id = `p-${Math.random().toString(36).slice(2)}`;
    let input;
    if (param.kind === "choice") {
      input = el("select", { id, onchange: (e) => set(e.target.value) },
        param.choices.map((c) => { const o = el("option", { value: c }, String(c)); o.selected = c === value; return o; }));
    } else if (param.kind === "bool") {
      input = el("input", { id, type: "checkbox", onchange: (e) => set(e.target.checked) });
      input.checked = Boolean(value);
    } else {
      const numeric = ["int", "float"].includes(param.kind);
      input = el("input", { id, type: numeric ? "number" : "text", step: param.kind === "int" ? "1" : "any",
        placeholder: param.default === null ? "default" : "", onchange: (e) => {
          const raw = e.target.value.trim();
          if (raw === "") return set(param.kind === "optional" ? null : param.default);
          if (numeric) return set(Number(raw));
          if (param.kind === "optional") {
            // A number, a list such as [0, 1], or plain text; the server validates it.
            try { return set(JSON.parse(raw)); } catch (err) { return set(raw); }
          }
          set(raw);
        } });
      input.value = value === null || value === undefined ? "" :
        (typeof value === "object" ? JSON.stringify(value) : String(value));
    }
    return el("span", { class: "param" }, el("label", { for: id }, param.name.replace(/_/g, " ")), input);
  }

  function stepRow(recipe, step, index) {
    const info = byName[step.technique];
    const remove = el("button", { type: "button", class: "small secondary", title: "Remove this step",
      onclick: () => { recipe.steps.splice(index, 1); save(); render(); } }, "×");
    if (!info) return el("div", { class: "step" }, el("strong", {}, step.technique), " (unknown technique) ", remove);
    return el("div", { class: "step", "data-technique": step.technique },
      el("strong", { title: info.help }, info.label), " ",
      info.params.map((p) => paramInput(step, p)), " ", remove,
      el("small", { class: "hint" }, info.help));
  }

  function addStepSelect(recipe) {
    return el("select", { class: "add-step", onchange: (e) => {
      const info = byName[e.target.value];
      if (!info) return;
      recipe.steps.push({ technique: info.technique, ...Object.fromEntries(info.params.map((p) => [p.name, p.default])) });
      save(); render();
    } }, el("option", { value: "" }, "+ add a step…"), catalog.map((t) => el("option", { value: t.technique }, t.label)));
  }

  function render() {
    list.replaceChildren(...recipes.map((recipe, index) => el("div", { class: "recipe", "data-recipe": String(index) },
      el("div", { class: "recipe-head" },
        el("input", { class: "recipe-name", value: recipe.name || "", "aria-label": "Recipe name",
          onchange: (e) => { recipe.name = e.target.value; save(); } }),
        el("button", { type: "button", class: "small secondary", onclick: () => { recipes.splice(index, 1); save(); render(); } }, "Remove recipe")),
      (recipe.steps || []).map((step, i) => stepRow(recipe, step, i)),
      addStepSelect(recipe))));
    if (!recipes.length) list.append(el("p", { class: "hint" }, "No recipes yet: only the baseline would run."));
  }

  document.querySelectorAll("[data-preset]").forEach((button) => button.addEventListener("click", () => {
    const preset = presets.find((p) => p.key === button.dataset.preset);
    const recipe = JSON.parse(JSON.stringify(preset.recipe));
    const taken = new Set(recipes.map((r) => r.name));
    let name = recipe.name, n = 2;
    while (taken.has(name)) name = `${recipe.name} ${n++}`;
    recipe.name = name;
    recipes.push(recipe);
    save(); render();
  }));
  textarea.addEventListener("change", () => {
    try { const parsed = JSON.parse(textarea.value || "[]"); if (Array.isArray(parsed)) { recipes = parsed; render(); } } catch (e) { /* the server will say */ }
  });
  render();
})();

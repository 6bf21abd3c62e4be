// Forms: errors shown next to the field that caused them, the rest above the form.
import { ApiError } from "./api.js";

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

export function showError(form, err) {
  const field = err instanceof ApiError && err.field ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
  if (field) {
    field.setAttribute("aria-invalid", "true");
    const box = document.getElementById(field.id + "-error");
    if (box) {
      box.textContent = err.message;
      field.focus();
      return;
    }
  }
  const top = form.querySelector(".form-error");
  top.textContent = err.message || String(err);
  top.focus();
}

// Run fn on submit with the button disabled; errors are shown on the form.
export function onSubmit(form, fn) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const btn = form.querySelector("button[type=submit]");
    if (btn) btn.disabled = true;
    try {
      await fn(new FormData(form));
    } catch (e) {
      showError(form, e);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
}

// A copy button for the text of target.
export function copyButton(button, target) {
  button.addEventListener("click", async () => {
    const text = target.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const r = document.createRange();
      r.selectNodeContents(target);
      const s = getSelection();
      s.removeAllRanges();
      s.addRange(r);
      document.execCommand("copy");
    }
    const was = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = was), 1500);
  });
}

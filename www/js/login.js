import { api } from "./api.js";
import { onSubmit } from "./form.js";
import { initNav } from "./nav.js";

const form = document.getElementById("login");
const next = new URLSearchParams(location.search).get("next");
// only a path of this site, never another origin
const target = next && /^\/[a-z0-9/_-]*$/i.test(next) && !next.startsWith("//") ? next : "/manage-api-keys";
initNav().then((me) => {
  if (me) location.replace(target);
});
onSubmit(form, async (data) => {
  try {
    await api("POST", "/api/v1/account/login", { email: data.get("email").trim(), password: data.get("password") });
  } catch (e) {
    if (e.status === 401) {
      e.field = "password";
      form.password.value = "";
    } else if (e.status === 429) {
      e.message = `Too many failed sign-ins. Try again in ${Math.ceil((e.retryAfter || 60) / 60)} minute(s).`;
    }
    throw e;
  }
  location.href = target;
});

import { api } from "./api.js";
import { onSubmit } from "./form.js";
import { initNav } from "./nav.js";

const form = document.getElementById("signup");
const params = new URLSearchParams(location.search);
if (params.get("invite")) {
  document.getElementById("invite-field").hidden = false;
  document.getElementById("invite").value = params.get("invite");
}
initNav().then((me) => {
  if (me) location.replace("/manage-api-keys");
});
onSubmit(form, async (data) => {
  const body = { email: data.get("email").trim(), password: data.get("password") };
  const invite = (data.get("invite") || "").trim();
  if (invite) body.invite = invite;
  try {
    await api("POST", "/api/v1/account/signup", body);
  } catch (e) {
    if (e.field === "invite") document.getElementById("invite-field").hidden = false;
    throw e;
  }
  location.href = "/manage-api-keys";
});

import { api } from "./api.js";
import { onSubmit } from "./form.js";
import { initNav } from "./nav.js";

const form = document.getElementById("reset");
const token = new URLSearchParams(location.search).get("token") || "";
form.token.value = token;
initNav();
onSubmit(form, async (data) => {
  try {
    await api("POST", "/api/v1/account/reset", { token: data.get("token"), password: data.get("password") });
  } catch (e) {
    if (e.field === "token") e.field = null;
    throw e;
  }
  location.href = "/manage-api-keys";
});

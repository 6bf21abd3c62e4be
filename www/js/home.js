import { initNav } from "./nav.js";
initNav();

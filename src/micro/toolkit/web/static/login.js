// The sign-in page: shows "refused" when the server sent the browser back with ?error,
// and carries ?next (a local path only) to the form so that the login returns there.

import "/static/app.js";

const q = new URLSearchParams(location.search);
const next = q.get("next") || "";
if (next.startsWith("/") && !next.startsWith("//")) document.getElementById("next").value = next;
if (q.has("error")) document.getElementById("login-error").hidden = false;

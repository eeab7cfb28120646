// The run page asks for its live part again every few seconds while a controller drives
// the run, and stops once the run has ended (the fragment then says data-live="false").
"use strict";
const box = document.getElementById("run");

function isLive() {
  const section = box.querySelector("[data-live]");
  return section !== null && section.dataset.live === "true";
}

async function refresh() {
  try {
    const response = await fetch(box.dataset.liveUrl, { cache: "no-store" });
    if (response.ok) {
      box.innerHTML = await response.text();
    }
  } catch (error) {
    // The server may be restarting: the next poll tries again.
  }
  if (isLive()) {
    setTimeout(refresh, Number(box.dataset.pollMs));
  }
}

if (box !== null && isLive()) {
  setTimeout(refresh, Number(box.dataset.pollMs));
}

// The form that takes a user message's place while it is edited: its text to change, Send to answer it
// again (editMessage), Cancel to keep it. It stays, busy, until the new run starts, and opens again if the
// server refuses the edit.
import { el } from "./elements";

export interface MessageEditor {
  element: HTMLElement;
  /** The edit was refused: the form can be used again (the page says why). */
  refused(): void;
}

export function messageEditor(text: string, send: (message: string) => void, cancel: () => void): MessageEditor {
  const message = el("textarea", { rows: "3", "aria-label": "Edited message", required: "" }) as HTMLTextAreaElement;
  message.value = text;
  const cancelButton = el("button", { type: "button", class: "link" }, "Cancel");
  const fields = el(
    "fieldset",
    {},
    message,
    el("div", { class: "buttons" }, el("button", { type: "submit" }, "Send"), cancelButton),
  ) as HTMLFieldSetElement;
  const form = el("form", {}, fields) as HTMLFormElement;
  const element = el("li", { class: "card editor", "data-role": "editor" }, form);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!message.value.trim()) return;
    fields.disabled = true;
    element.setAttribute("aria-busy", "true");
    send(message.value);
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
  });
  cancelButton.addEventListener("click", cancel);
  queueMicrotask(() => message.focus());

  return {
    element,
    refused() {
      fields.disabled = false;
      element.removeAttribute("aria-busy");
    },
  };
}

// The form that takes a user message's place while it is edited: its text to change, the files it carries
// to keep, remove or add to, Send to answer it again (editMessage), Cancel to keep it. It stays, busy, until
// the new run starts, and opens again if the server refuses the edit.
import type { Attachment } from "./api";
import { el } from "./elements";
import { attachControl, attachmentTray, takePastedFiles, type UploadFile } from "./uploads";

export interface MessageEditor {
  element: HTMLElement;
  /** The edit was refused: the form can be used again (the page says why). */
  refused(): void;
}

export interface EditedMessage {
  text: string;
  attachments: Attachment[];
  upload: UploadFile;
  /** The edited text and the files it is to carry now (editMessage sends only these). */
  send(message: string, attachments: Attachment[]): void;
  cancel(): void;
}

export function messageEditor({ text, attachments, upload, send, cancel }: EditedMessage): MessageEditor {
  const message = el("textarea", { rows: "3", "aria-label": "Edited message", required: "" }) as HTMLTextAreaElement;
  message.value = text;
  const sendButton = el("button", { type: "submit" }, "Send") as HTMLButtonElement;
  const tray = attachmentTray(upload, () => (sendButton.disabled = tray.uploading()));
  tray.restore(attachments);
  takePastedFiles(message, tray);
  const cancelButton = el("button", { type: "button", class: "link" }, "Cancel");
  const fields = el(
    "fieldset",
    {},
    tray.element,
    message,
    el("div", { class: "buttons" }, attachControl(tray), sendButton, cancelButton),
  ) as HTMLFieldSetElement;
  const form = el("form", {}, fields) as HTMLFormElement;
  const element = el("li", { class: "card editor", "data-role": "editor" }, form);
  const close = (): void => {
    tray.clear();
    cancel();
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!message.value.trim() || tray.uploading()) return;
    fields.disabled = true;
    element.setAttribute("aria-busy", "true");
    send(message.value, tray.ready());
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  cancelButton.addEventListener("click", close);
  queueMicrotask(() => message.focus());

  return {
    element,
    refused() {
      fields.disabled = false;
      element.removeAttribute("aria-busy");
    },
  };
}

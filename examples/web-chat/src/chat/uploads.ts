// The files a message is about to carry. Each one picked, dropped or pasted uploads at once, shown as a chip
// above the message box: a thumbnail for an image, its name and size, a remove button, "Uploading…" until the
// server has it, and the server's reason when it refuses it (a refused file is not sent). Send waits until
// none is uploading.
import type { Attachment, UploadResult } from "./api";
import { byteSize } from "./attachments";
import { el } from "./elements";

/** The server's default AGNO_GRAPHQL_MAX_ATTACHMENTS_PER_MESSAGE: it refuses more (BAD_USER_INPUT). */
export const MAX_ATTACHMENTS = 10;

/** Uploads one file, calling `done` with the outcome; returns a function that abandons the upload. */
export type UploadFile = (file: File, done: (result: UploadResult) => void) => () => void;

export interface AttachmentTray {
  /** The chips and what the tray has to say (files left out), hidden while empty. */
  element: HTMLElement;
  /** Uploads each file in its own chip; beyond MAX_ATTACHMENTS the rest are left out, and the tray says so. */
  add(files: Iterable<File>): void;
  /** Chips for files the server has already (an edited message's, a message that could not be sent). */
  restore(attachments: Attachment[]): void;
  /** The uploaded attachments, in the order added; refused and removed files are not among them. */
  ready(): Attachment[];
  /** A file is still uploading: what the message carries is not known yet. */
  uploading(): boolean;
  /** Empties the tray, abandoning uploads that still go. */
  clear(): void;
}

interface Chip {
  element: HTMLElement;
  attachment: Attachment | null;
  failed: boolean;
  /** Abandons its upload and frees its thumbnail. */
  dispose(): void;
}

type ChipState = { uploading: true } | { attachment: Attachment } | { refused: string };

/** A chip's look: thumbnail (or the file's extension), name, size or what went wrong, and its remove button. */
function chipView(
  name: string,
  size: number,
  preview: string | null,
): { element: HTMLElement; show(state: ChipState): void } {
  const extension = name.includes(".") ? name.split(".").pop()?.slice(0, 4).toUpperCase() ?? "" : "";
  const icon = el("span", { class: "thumb file", "aria-hidden": "true" }, extension || "FILE");
  let thumb: HTMLElement = icon;
  if (preview) {
    thumb = el("img", { class: "thumb", src: preview, alt: name });
    thumb.addEventListener("error", () => thumb.replaceWith(icon), { once: true }); // not an image after all
  }
  const status = el("small", { class: "status" });
  const label = `Remove ${name}`;
  const remove = el("button", { type: "button", class: "icon", "data-action": "remove", "aria-label": label, title: "Remove" });
  const text = el("span", { class: "chip-text" }, el("span", { class: "name" }, name), status);
  const element = el("li", { class: "chip", title: name }, thumb, text, remove);
  return {
    element,
    show(state) {
      const uploading = "uploading" in state;
      const refused = "refused" in state ? state.refused : null;
      element.setAttribute("data-state", uploading ? "uploading" : refused !== null ? "refused" : "ready");
      element.toggleAttribute("aria-busy", uploading);
      if (refused !== null) status.setAttribute("role", "alert"); // the reason is read out as it appears
      status.textContent = refused ?? (uploading ? `${byteSize(size)} · Uploading…` : byteSize(size));
    },
  };
}

export function attachmentTray(upload: UploadFile, changed: () => void): AttachmentTray {
  const list = el("ul", { class: "chips", "aria-label": "Files to send" });
  const note = el("p", { class: "tray-note", role: "status" });
  const element = el("div", { class: "tray" }, list, note);
  element.hidden = true;
  let chips: Chip[] = [];

  const render = (): void => {
    element.hidden = !chips.length && !note.textContent;
    changed();
  };

  function removable(chip: Chip): Chip {
    chip.element.querySelector("button")?.addEventListener("click", () => {
      const neighbour = chip.element.nextElementSibling ?? chip.element.previousElementSibling;
      chip.dispose();
      chip.element.remove();
      chips = chips.filter((other) => other !== chip);
      note.textContent = "";
      render();
      neighbour?.querySelector("button")?.focus();
    });
    list.append(chip.element);
    chips.push(chip);
    return chip;
  }

  function uploaded(file: File): void {
    const preview = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    const view = chipView(file.name, file.size, preview);
    const chip = removable({ element: view.element, attachment: null, failed: false, dispose: () => {} });
    view.show({ uploading: true });
    const abandon = upload(file, (result) => {
      if ("attachment" in result) chip.attachment = result.attachment;
      else chip.failed = true;
      view.show("attachment" in result ? result : { refused: result.message });
      render();
    });
    chip.dispose = () => {
      abandon();
      if (preview) URL.revokeObjectURL(preview);
    };
  }

  return {
    element,
    add(files) {
      const all = [...files];
      const room = Math.max(MAX_ATTACHMENTS - chips.filter((chip) => !chip.failed).length, 0);
      const left = all.length - room;
      const leftOut = `${left} ${left === 1 ? "was" : "were"} not added`;
      note.textContent = left > 0 ? `A message can carry ${MAX_ATTACHMENTS} files at most: ${leftOut}.` : "";
      for (const file of all.slice(0, room)) uploaded(file);
      render();
    },
    restore(attachments) {
      for (const attachment of attachments) {
        const preview = attachment.kind === "IMAGE" ? attachment.url : null;
        const view = chipView(attachment.name, attachment.byteSize, preview);
        removable({ element: view.element, attachment, failed: false, dispose: () => {} });
        view.show({ attachment });
      }
      render();
    },
    ready: () => chips.flatMap((chip) => (chip.attachment ? [chip.attachment] : [])),
    uploading: () => chips.some((chip) => !chip.attachment && !chip.failed),
    clear() {
      for (const chip of chips) chip.dispose();
      chips = [];
      list.replaceChildren();
      note.textContent = "";
      render();
    },
  };
}

/** The attach button: a file input (reached with Tab, opened with Enter or Space) in a label that looks a button. */
export function attachControl(tray: AttachmentTray): HTMLElement {
  const input = el("input", { type: "file", multiple: "", "aria-label": "Attach files" }) as HTMLInputElement;
  input.addEventListener("change", () => {
    tray.add(input.files ?? []);
    input.value = ""; // the same file can be picked again
  });
  return el("label", { class: "attach", title: "Attach files" }, input);
}

/** Files pasted into `box` (a screenshot, an image copied from a page) join the tray; text pastes as text. */
export function takePastedFiles(box: HTMLElement, tray: AttachmentTray): void {
  box.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return;
    if (!event.clipboardData?.types.includes("text/plain")) event.preventDefault();
    tray.add(files);
  });
}

/** Files dragged over `zone` mark it (data-dropping); dropped there, they join the tray. */
export function takeDroppedFiles(zone: HTMLElement, tray: AttachmentTray): void {
  const carriesFiles = (event: DragEvent): boolean => event.dataTransfer?.types.includes("Files") ?? false;
  zone.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    zone.setAttribute("data-dropping", "");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget as Node | null)) zone.removeAttribute("data-dropping");
  });
  zone.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    zone.removeAttribute("data-dropping");
    tray.add(event.dataTransfer?.files ?? []);
  });
}

// The files a message carries, as its bubble shows them: images inline (a click opens them), audio and video
// with their controls, documents as a link with name and size. Links are signed and expire, so they come
// with the history each time it loads; one that expired while the page was open is asked for again once.
import type { Attachment } from "./api";
import { el } from "./elements";

/** A fresh signed link for an attachment, or null when it is gone. */
export type FreshUrl = (attachmentId: string) => Promise<string | null>;

/** The attachments each bubble shows, so an edit or a refused message can take them up again. */
const carried = new WeakMap<HTMLElement, Attachment[]>();

export function byteSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const [value, unit] = bytes < 1024 * 1024 ? [bytes / 1024, "KB"] : [bytes / (1024 * 1024), "MB"];
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** An <img>, <audio> or <video> whose link fails asks for a fresh one, once, and shows it. */
function refreshedOnError(
  media: HTMLImageElement | HTMLMediaElement,
  attachmentId: string,
  freshUrl: FreshUrl,
  link?: HTMLAnchorElement,
): void {
  media.addEventListener(
    "error",
    () => {
      void freshUrl(attachmentId).then((url) => {
        if (!url) return;
        media.src = url;
        if (link) link.href = url;
      });
    },
    { once: true },
  );
}

function imageView(attachment: Attachment, freshUrl: FreshUrl): HTMLElement {
  // Its size is known from the upload: the bubble has its final size before the image arrives.
  const size: Record<string, string> =
    attachment.width && attachment.height ? { width: String(attachment.width), height: String(attachment.height) } : {};
  const image = el("img", { src: attachment.url, alt: attachment.name, ...size }) as HTMLImageElement;
  const title = `${attachment.name}, ${byteSize(attachment.byteSize)}`;
  const attributes = { class: "attachment image", href: attachment.url, target: "_blank", rel: "noopener", title };
  const link = el("a", attributes, image) as HTMLAnchorElement;
  refreshedOnError(image, attachment.id, freshUrl, link);
  return link;
}

function playerView(attachment: Attachment, freshUrl: FreshUrl): HTMLElement {
  const tag = attachment.kind === "VIDEO" ? "video" : "audio";
  const attributes = { src: attachment.url, controls: "", preload: "metadata", "aria-label": attachment.name };
  const player = el(tag, attributes) as HTMLMediaElement;
  refreshedOnError(player, attachment.id, freshUrl);
  const caption = el("figcaption", {}, attachment.name, " ", el("small", {}, byteSize(attachment.byteSize)));
  return el("figure", { class: `attachment ${tag}` }, player, caption);
}

function documentView(attachment: Attachment): HTMLElement {
  const attributes = { class: "attachment document", href: attachment.url, target: "_blank", rel: "noopener" };
  return el("a", attributes, attachment.name, " ", el("small", {}, byteSize(attachment.byteSize)));
}

export function attachmentView(attachment: Attachment, freshUrl: FreshUrl): HTMLElement {
  let view: HTMLElement;
  if (attachment.kind === "IMAGE") view = imageView(attachment, freshUrl);
  else if (attachment.kind === "AUDIO" || attachment.kind === "VIDEO") view = playerView(attachment, freshUrl);
  else view = documentView(attachment);
  view.setAttribute("data-attachment-id", attachment.id);
  return view;
}

/** Shows (or replaces) a bubble's attachments after its text, before its action buttons. */
export function showAttachments(bubble: HTMLElement, attachments: Attachment[], freshUrl: FreshUrl): void {
  bubble.querySelector(":scope > .attachments")?.remove();
  carried.set(bubble, attachments);
  if (!attachments.length) return;
  const views = attachments.map((attachment) => attachmentView(attachment, freshUrl));
  const list = el("div", { class: "attachments" }, ...views);
  bubble.insertBefore(list, bubble.querySelector(":scope > .message-actions"));
}

export function attachmentsOf(bubble: HTMLElement): Attachment[] {
  return carried.get(bubble) ?? [];
}

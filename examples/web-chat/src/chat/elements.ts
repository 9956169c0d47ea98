// The two small builders the page's modules share: an element with attributes and children, and how a
// tool call reads ("multiply(12, 7)").

export function el(tag: string, attributes: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function toolArguments(value: unknown): string {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.values(value as Record<string, unknown>)
      .map((argument) => JSON.stringify(argument))
      .join(", ");
  }
  return value == null ? "" : JSON.stringify(value);
}

export function toolCallText(name: string, args: unknown): string {
  return `${name}(${toolArguments(args)})`;
}

// The card a paused run shows in the conversation: one small form for each thing it waits for, of the
// form its kind takes. Once every one is answered the card hands the answers over together (continueRun
// takes them at once); one the server refuses opens again with its reason.
import type { RequirementAnswer, RunRequirementFieldsFragment } from "../gql/graphql";
import { el, toolCallText } from "./elements";

export type Requirement = RunRequirementFieldsFragment;
type InputField = Requirement["inputFields"][number];
type Question = Requirement["questions"][number];

export interface RequirementCard {
  element: HTMLElement;
  /** The server refused the answer to `requirementId` (or, without one, all of them): ask again, saying why. */
  refused(requirementId: string | undefined, message: string): void;
}

/** An answer's own fields, or what is wrong with what was filled in. */
type Reading = Omit<RequirementAnswer, "requirementId"> | { problem: string };

class Unreadable extends Error {}

/** The controls of one kind, and how to read an answer out of them when its form is sent. */
interface Part {
  title: (string | Node)[];
  controls: HTMLElement[];
  buttons: HTMLElement[];
  read(submitter: HTMLElement | null): Reading;
}

function submit(label: string, value = "send", className = ""): HTMLElement {
  return el("button", { type: "submit", value, ...(className ? { class: className } : {}) }, label);
}

function call(requirement: Requirement): HTMLElement {
  return el("b", {}, toolCallText(requirement.toolCall.name, requirement.toolCall.arguments));
}

function confirmation(requirement: Requirement): Part {
  const note = el("input", { name: "note", "aria-label": "Note", placeholder: "Note (optional): why, if you refuse" });
  // Enter in the note would submit with the first button, Approve: the note is more likely a refusal's.
  note.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();
  });
  return {
    title: ["The assistant wants to run ", call(requirement), "."],
    controls: [note],
    buttons: [submit("Approve", "approve"), submit("Refuse", "refuse", "danger")],
    read(submitter) {
      const text = (note as HTMLInputElement).value.trim();
      if (submitter?.getAttribute("value") === "approve") return { confirmed: true };
      return { confirmed: false, note: text || null };
    },
  };
}

/** The control for a field of the tool's Python type; numbers for int and float, JSON for list and dict. */
function fieldInput(field: InputField): { input: HTMLInputElement; read(): unknown } {
  const input = el("input", { name: field.name }) as HTMLInputElement;
  const filled = field.value;
  switch (field.type) {
    case "int":
    case "float":
      input.type = "number";
      input.step = field.type === "int" ? "1" : "any";
      input.required = true;
      if (typeof filled === "number") input.value = String(filled);
      return { input, read: () => input.valueAsNumber };
    case "bool":
      input.type = "checkbox";
      input.checked = filled === true;
      return { input, read: () => input.checked };
    case "list":
    case "dict":
      input.required = true;
      input.placeholder = field.type === "list" ? '["one", "two"]' : '{"key": "value"}';
      if (filled != null) input.value = JSON.stringify(filled);
      return {
        input,
        read() {
          try {
            return JSON.parse(input.value);
          } catch {
            throw new Unreadable(`${field.name} is not valid JSON.`);
          }
        },
      };
    default:
      input.required = true;
      if (filled != null) input.value = String(filled);
      return { input, read: () => input.value };
  }
}

function userInput(requirement: Requirement): Part {
  const fields = requirement.inputFields.map((field) => ({ field, ...fieldInput(field) }));
  return {
    title: [call(requirement), " needs a few details from you."],
    controls: fields.map(({ field, input }) =>
      el("label", { class: "field" }, el("span", {}, field.name), input, el("small", {}, field.description ?? "")),
    ),
    buttons: [submit("Send")],
    read() {
      try {
        return { values: Object.fromEntries(fields.map(({ field, read }) => [field.name, read()])) };
      } catch (error) {
        if (error instanceof Unreadable) return { problem: error.message };
        throw error;
      }
    },
  };
}

function questionChoices(question: Question, name: string): { fieldset: HTMLElement; chosen(): string[] } {
  const type = question.multiSelect ? "checkbox" : "radio";
  const inputs = question.options.map(
    (option) => el("input", { type, name, value: option.label, ...(type === "radio" ? { required: "" } : {}) }) as HTMLInputElement,
  );
  const legend = el("legend", {}, ...(question.header ? [el("b", {}, question.header), " "] : []), question.question);
  const options = question.options.map((option, index) =>
    el("label", { class: "option" }, inputs[index], option.label, ...(option.description ? [el("small", {}, option.description)] : [])),
  );
  return {
    fieldset: el("fieldset", { class: "question" }, legend, ...options),
    chosen: () => inputs.filter((input) => input.checked).map((input) => input.value),
  };
}

function userFeedback(requirement: Requirement): Part {
  const questions = requirement.questions.map((question, index) => ({
    question,
    ...questionChoices(question, `${requirement.id}-${index}`),
  }));
  return {
    title: ["The assistant asks you to choose."],
    controls: questions.map(({ fieldset }) => fieldset),
    buttons: [submit("Send")],
    read() {
      const selections = questions.map(({ chosen }) => chosen());
      const unanswered = questions.find((_, index) => selections[index].length === 0);
      if (unanswered) return { problem: `Choose at least one for “${unanswered.question.question}”` };
      return { selections };
    },
  };
}

function externalExecution(requirement: Requirement): Part {
  const result = el("textarea", { name: "result", rows: "3", "aria-label": "Result", required: "" }) as HTMLTextAreaElement;
  return {
    title: ["Run ", call(requirement), " yourself and paste what it gave."],
    controls: [result],
    buttons: [submit("Send result")],
    read: () => ({ result: result.value }),
  };
}

const PARTS: Record<Requirement["kind"], (requirement: Requirement) => Part> = {
  CONFIRMATION: confirmation,
  USER_INPUT: userInput,
  USER_FEEDBACK: userFeedback,
  EXTERNAL_EXECUTION: externalExecution,
};

/** The card for a run paused on `requirements`; `send` gets one answer for each, in their order. */
export function requirementCard(
  runId: string,
  requirements: Requirement[],
  send: (answers: RequirementAnswer[]) => void,
): RequirementCard {
  const answers = new Map<string, RequirementAnswer>();
  const forms = new Map<string, { fields: HTMLFieldSetElement; error: HTMLElement }>();
  const cardError = el("p", { class: "error", role: "alert" });
  const element = el("li", { class: "card", "data-role": "requirements", "data-run-id": runId });

  for (const requirement of requirements) {
    const part = PARTS[requirement.kind](requirement);
    const error = el("p", { class: "error", role: "alert" });
    const buttons = el("div", { class: "buttons" }, ...part.buttons);
    const fields = el("fieldset", { class: "answer" }, ...part.controls, buttons) as HTMLFieldSetElement;
    const form = el(
      "form",
      { class: "requirement", "data-kind": requirement.kind, "data-requirement-id": requirement.id },
      el("p", {}, ...part.title),
      fields,
      error,
    ) as HTMLFormElement;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const reading = part.read(event.submitter);
      if ("problem" in reading) {
        error.textContent = reading.problem;
        return;
      }
      error.textContent = cardError.textContent = "";
      answers.set(requirement.id, { requirementId: requirement.id, ...reading });
      fields.disabled = true;
      if (answers.size === requirements.length) {
        element.setAttribute("aria-busy", "true");
        send(requirements.map((each) => answers.get(each.id)!));
      }
    });
    forms.set(requirement.id, { fields, error });
    element.append(form);
  }
  element.append(cardError);

  function refused(requirementId: string | undefined, message: string): void {
    element.removeAttribute("aria-busy");
    const form = requirementId ? forms.get(requirementId) : undefined;
    const reopened = form ? [[requirementId!, form] as const] : [...forms];
    for (const [id, { fields }] of reopened) {
      answers.delete(id);
      fields.disabled = false;
    }
    (form?.error ?? cardError).textContent = message;
  }

  return { element, refused };
}

// A `lambda` tool of the rehearsal tools test's registry: hosted by the rehearsal outside the stack,
// invoked by the step worker under its role with the call as payload.
export async function handler(event) {
  const { kg } = event.arguments ?? {};
  return { grams: Number(kg) * 1000, tool: event.tool, agent: event.agent };
}

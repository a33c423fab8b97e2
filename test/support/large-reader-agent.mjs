/**
 * A `lambda` agent for the rehearsal (RehearsalOptions.agentFunctions): it reads the values its
 * request passed by reference (docs/agents.md, "Large values") and answers what it received, so a
 * test can tell that the whole aggregate reached it.
 */
async function withValues(request) {
  for (const path of request.byReference ?? []) {
    const [field, i] = path.split('.'); // 'input' or 'memory.<i>.content'
    const ref = field === 'input' ? request.input : request.memory[i].content;
    const response = await fetch(ref.$ref);
    if (!response.ok) throw new Error(`could not read ${path}: HTTP ${response.status}`);
    const value = await response.json();
    if (field === 'input') request.input = value;
    else request.memory[i].content = value;
  }
  return request;
}

export const handler = async (event) => {
  const byReference = event.byReference ?? [];
  const request = await withValues(event);
  const results = Object.values(request.input?.results ?? {});
  return {
    next_action: 'final_response',
    content: {
      byReference,
      childCount: request.input?.child_count,
      resultsRead: results.length,
      textBytes: results.reduce((sum, r) => sum + (r?.text?.length ?? 0), 0),
      inputBytes: JSON.stringify(request.input).length,
    },
  };
};

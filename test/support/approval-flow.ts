/** The approval tests' definition: prepare → review (a checkpoint) → finish. */

/**
 * A `prepare → review → finish` definition of `test-sleep` steps; `review` takes `reviewLines`
 * (YAML, indented under the step), and `finish`'s label carries the decided `data` fields named
 * by `labelFields`, so a test can read what the step after the checkpoint received.
 */
export function approvalFlow(slug: string, reviewLines: string[], labelFields: string[] = ['limit']): string {
  const decided = labelFields.map((f) => `-\${{ $string(steps.review.output.data.${f}) }}`).join('');
  return `
slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: prepare
    agent: test-sleep
    with: { label: "${slug}-prepare", delayMs: 1 }
  - id: review
    type: checkpoint
    needs: [prepare]
    prompt: "Check \${{ steps.prepare.output.label }}"
${reviewLines.map((l) => `    ${l}`).join('\n')}
  - id: finish
    agent: test-sleep
    needs: [review]
    with:
      label: "${slug}-finish${decided}"
      delayMs: 1
output:
  finished: \${{ steps.finish.output.label }}
`;
}

/**
 * The `needs` graph of a definition: cycle detection and ancestry for the loader's rules, and the
 * DAG helpers the engine uses (topological order, ancestors, successors, descendants).
 *
 * Every walk here is iterative (explicit stacks and queues, no recursion), so a definition's size
 * is bounded by memory, not by the call stack: a 10,000-step chain or cycle is checked like a
 * 3-step one. Each helper is linear in steps plus `needs` entries, except {@link Ancestry.has},
 * which walks at most the ancestors of one step per question.
 */
import { DefinitionError, type Segment } from '../lib/index.js';
import type { Definition, StepSpec } from './schema.js';

/** The part of a definition the DAG helpers need. */
export type StepGraph = Pick<Definition, 'steps'>;

/** A cycle in the `needs` graph, as {@link findCycle} reports it. */
export interface NeedsCycle {
  /** Step ids in `needs` direction, first id repeated at the end: `[a, b, a]` = a needs b, b needs a. */
  ids: string[];
  /** Path of the `needs` entry that closes the cycle (`['steps', i, 'needs', j]`). */
  path: Segment[];
}

/**
 * Find one cycle in the `needs` graph (known ids only): a depth-first walk that starts from each
 * step in file order and follows `needs` in list order; the first back edge met is reported.
 * Steps that share an id are represented by the first of them (`indexById`).
 * @param indexById - step id → index of its first step in `steps`; needs naming other ids are ignored.
 */
export function findCycle(steps: readonly StepSpec[], indexById: ReadonlyMap<string, number>): NeedsCycle | undefined {
  const state = new Map<string, 'active' | 'done'>();
  /** The current path of the walk; `next` is the index of the `needs` entry to look at next. */
  const frames: Array<{ id: string; index: number; needs: readonly string[]; next: number }> = [];
  const enter = (id: string): void => {
    const index = indexById.get(id) ?? 0;
    state.set(id, 'active');
    frames.push({ id, index, needs: steps[index]?.needs ?? [], next: 0 });
  };
  for (const root of steps) {
    if (state.has(root.id)) continue;
    enter(root.id);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1];
      if (frame === undefined) break;
      if (frame.next >= frame.needs.length) {
        frames.pop();
        state.set(frame.id, 'done');
        continue;
      }
      const j = frame.next;
      frame.next += 1;
      const need = frame.needs[j];
      if (need === undefined || !indexById.has(need)) continue;
      const seen = state.get(need);
      if (seen === 'active') {
        const from = frames.findIndex((f) => f.id === need);
        return { ids: [...frames.slice(from).map((f) => f.id), need], path: ['steps', frame.index, 'needs', j] };
      }
      if (seen === undefined) enter(need);
    }
  }
  return undefined;
}

/** Answers "is `ancestorId` among the transitive `needs` of `stepId`?" for one set of steps. */
export interface Ancestry {
  /** `true` when `stepId` depends on `ancestorId`, directly or transitively; unknown ids are never ancestors. */
  has(stepId: string, ancestorId: string): boolean;
}

/**
 * Ancestry over `steps`' `needs` (the first step of a duplicated id stands for it; unknown needs
 * are ignored). Questions are answered by a breadth-first walk up from `stepId` that stops at the
 * first match, so nothing quadratic is built up front; cycles are tolerated (visited ids are not
 * walked twice).
 */
export function ancestryOf(steps: readonly StepSpec[]): Ancestry {
  const needsById = new Map<string, readonly string[]>();
  for (const step of steps) if (!needsById.has(step.id)) needsById.set(step.id, step.needs);
  return {
    has(stepId, ancestorId) {
      if (!needsById.has(ancestorId)) return false;
      const direct = needsById.get(stepId) ?? [];
      if (direct.includes(ancestorId)) return true;
      const seen = new Set<string>();
      const queue = [...direct];
      for (let head = 0; head < queue.length; head += 1) {
        const id = queue[head] ?? '';
        if (id === ancestorId) return true;
        if (seen.has(id)) continue;
        seen.add(id);
        for (const need of needsById.get(id) ?? []) if (!seen.has(need)) queue.push(need);
      }
      return false;
    },
  };
}

function requireStep(def: StepGraph, stepId: string): StepSpec {
  const step = def.steps.find((candidate) => candidate.id === stepId);
  if (!step) throw new DefinitionError(`no step "${stepId}" (steps: ${def.steps.map((s) => s.id).join(', ')})`);
  return step;
}

/** A binary min-heap of step indexes (the ready set of {@link topologicalOrder}). */
class IndexHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((items[parent] ?? 0) <= value) break;
      items[i] = items[parent] ?? 0;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && (items[right] ?? 0) < (items[left] ?? 0) ? right : left;
      if ((items[child] ?? 0) >= last) break;
      items[i] = items[child] ?? 0;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

/**
 * Step ids in an order where every step comes after its `needs`; among steps that are ready at
 * the same time, file order wins (stable). Kahn's algorithm with the ready steps kept by file index.
 * @throws {DefinitionError} if the steps contain a cycle or an unknown `needs` id (impossible for
 *   loaded definitions).
 */
export function topologicalOrder(def: StepGraph): string[] {
  const steps = def.steps;
  const waiting = steps.map((step) => new Set(step.needs).size);
  const dependents = new Map<string, number[]>();
  steps.forEach((step, i) => {
    for (const need of new Set(step.needs)) {
      const list = dependents.get(need);
      if (list) list.push(i);
      else dependents.set(need, [i]);
    }
  });
  const ready = new IndexHeap();
  waiting.forEach((count, i) => {
    if (count === 0) ready.push(i);
  });
  const done = new Set<string>();
  const order: string[] = [];
  for (let i = ready.pop(); i !== undefined; i = ready.pop()) {
    const id = steps[i]?.id ?? '';
    order.push(id);
    if (done.has(id)) continue;
    done.add(id);
    for (const dependent of dependents.get(id) ?? []) {
      const left = (waiting[dependent] ?? 0) - 1;
      waiting[dependent] = left;
      if (left === 0) ready.push(dependent);
    }
  }
  if (order.length < steps.length) {
    const stuck = steps.filter((_, i) => (waiting[i] ?? 0) > 0).map((s) => s.id);
    throw new DefinitionError(`steps ${stuck.join(', ')} can never run (cycle or unknown needs)`);
  }
  return order;
}

/**
 * Every step `stepId` depends on, directly or transitively.
 * @throws {DefinitionError} if there is no such step.
 */
export function ancestorsOf(def: StepGraph, stepId: string): Set<string> {
  requireStep(def, stepId);
  const byId = new Map(def.steps.map((step) => [step.id, step] as const));
  const result = new Set<string>();
  const queue = [...(byId.get(stepId)?.needs ?? [])];
  for (let head = 0; head < queue.length; head += 1) {
    const id = queue[head] ?? '';
    if (result.has(id)) continue;
    result.add(id);
    queue.push(...(byId.get(id)?.needs ?? []));
  }
  return result;
}

/**
 * Steps that list `stepId` in their `needs` (direct dependents), in file order.
 * @throws {DefinitionError} if there is no such step.
 */
export function successorsOf(def: StepGraph, stepId: string): string[] {
  requireStep(def, stepId);
  return def.steps.filter((step) => step.needs.includes(stepId)).map((step) => step.id);
}

/**
 * Every step that depends on `stepId`, directly or transitively (e.g. to skip them when it fails).
 * @throws {DefinitionError} if there is no such step.
 */
export function descendantsOf(def: StepGraph, stepId: string): Set<string> {
  requireStep(def, stepId);
  const dependents = new Map<string, string[]>();
  for (const step of def.steps) {
    for (const need of step.needs) {
      const list = dependents.get(need);
      if (list) list.push(step.id);
      else dependents.set(need, [step.id]);
    }
  }
  const result = new Set<string>();
  const queue = [stepId];
  for (let head = 0; head < queue.length; head += 1) {
    for (const id of dependents.get(queue[head] ?? '') ?? []) {
      if (result.has(id)) continue;
      result.add(id);
      queue.push(id);
    }
  }
  return result;
}

/**
 * The model card's curves, drawn from the metrics.jsonl of each training stage: pretraining loss,
 * stage-1 loss terms and dev nDCG@10, stage-2 reward and format success.
 */
import path from 'node:path';
import { readMetricsFile } from '../train/metrics-log.js';
import { COLORS, smooth, svgChart, type MetricRecord, type Series } from '../train/report.js';
import type { RecipePaths } from './recipe-profiles.js';

export interface Chart {
  file: string;
  title: string;
  svg: string;
}

const records = (file: string): MetricRecord[] => readMetricsFile(file).records;

/** Series of `key` over records of `type`, as a moving average of `window` points. */
function series(rs: readonly MetricRecord[], type: string, key: string, name: string, i: number, window = 1): Series {
  const pts = rs
    .filter((r) => r.type === type && typeof r[key] === 'number')
    .map((r): [number, number] => [r.step, r[key] as number]);
  return { name, color: COLORS[i % COLORS.length], points: smooth(pts, window) };
}

const windowFor = (rs: readonly MetricRecord[]): number =>
  Math.max(1, Math.round(rs.filter((r) => r.type === 'train').length / 40));

export function recipeCharts(p: RecipePaths): Chart[] {
  const lm = records(path.join(p.lm, 'metrics.jsonl'));
  const s1 = records(path.join(p.stage1, 'metrics.jsonl'));
  const s2 = records(path.join(p.stage2, 'metrics.jsonl'));
  const w1 = windowFor(lm),
    w2 = windowFor(s1),
    w3 = windowFor(s2);
  const charts: Chart[] = [];
  const add = (file: string, title: string, list: Series[]): void => {
    if (list.some((s) => s.points.length > 0)) charts.push({ file, title, svg: svgChart(title, list) });
  };
  add('pretraining.svg', `pretraining: cross-entropy (train: moving average of ${w1} steps)`, [
    series(lm, 'train', 'loss', 'train', 0, w1),
    series(lm, 'valid', 'loss', 'validation', 1),
  ]);
  add(
    'stage1-loss.svg',
    `stage 1: loss terms (moving average of ${w2} steps)`,
    ['loss', 'sft', 'infonce', 'triplet'].map((k, i) => series(s1, 'train', k, k, i, w2)),
  );
  add('stage1-dev.svg', 'stage 1: dev nDCG@10 (NFCorpus dev subset)', [series(s1, 'eval', 'ndcg10', 'nDCG@10', 2)]);
  add('stage2-reward.svg', `stage 2: reward and format success (moving average of ${w3} steps)`, [
    series(s2, 'train', 'rewardMean', 'reward', 0, w3),
    series(s2, 'train', 'rankingRewardMean', 'ranking reward', 1, w3),
    series(s2, 'train', 'formatSuccess', 'token emitted', 2, w3),
  ]);
  add('stage2-reasoning.svg', `stage 2: reasoning tokens per response (moving average of ${w3} steps)`, [
    series(s2, 'train', 'reasoningTokens', 'tokens', 3, w3),
  ]);
  return charts;
}

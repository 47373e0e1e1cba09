/** The rlenv layer: the RL retrieval environment (embedding table, HNSW graph, refresh policies, rewards). */
export { EmbeddingTable, TableTooLargeError, tableBytes, defaultTableLimit, topK, NEVER } from './embedding-table.js';
export { HnswGraph, DEFAULT_GRAPH, type GraphSettings } from './graph.js';
export { planRefresh, stalest, DEFAULT_REFRESH, type RefreshMode, type RefreshSettings, type RefreshPlan, type RefreshRequest } from './refresh-policy.js';
export { RetrievalEnvironment, type DocumentEncoder, type EnvironmentOptions, type StepQuery, type StepOutcome, type StepStats } from './environment.js';
export { rankOf, dcgAtK, idealDcgAtK, reciprocalRank, rankingReward, responseReward, DEFAULT_REWARD, type RankingRewardKind, type RewardSettings, type Positive } from './reward.js';
export { averageRanks, pearson, spearman, summariseAudit, formatAudit, type AuditStep, type AuditSummary } from './audit.js';

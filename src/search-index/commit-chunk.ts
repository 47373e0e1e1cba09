/**
 * Documents encoded and committed together unless a caller says otherwise (AddOptions.documentsPerCommit):
 * a kill loses at most this many documents' work. Seed vectors commit in the same chunks, so this lives
 * apart from the index (and its SQLite), where training code that writes them can import it.
 */
export const DOCUMENTS_PER_COMMIT = 256;

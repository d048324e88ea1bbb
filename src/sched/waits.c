/* tether — parked goroutines by wait reason and age (tt__waits in
 * internal.h): the slow paths of the accounting and the sums the metrics
 * read.
 *
 * Design notes
 * ------------
 * The park and the wake each touch one cell (internal.h, inline). What
 * is here runs when the scheduler's stamp moves into a new fine epoch
 * (about once a second at most), when a wake is from an older epoch than
 * the current one, and when the metrics are read. None of it visits a
 * goroutine.
 *
 * Folding. When fine_end moves from `end` to `e`, the fine epochs
 * (end - 64, e - 64] leave the fine ring; each goes into the coarse cell
 * of its coarse epoch (fine epoch >> 4) if that epoch is still in the
 * coarse ring's window for the new cend, else into `old`. Before that,
 * the coarse epochs leaving the coarse window go into `old`. The order
 * matters: a coarse cell is emptied before fine epochs of a newer coarse
 * epoch with the same index land in it. Each step folds at most the
 * whole of a ring, so a jump of hours costs the same as one of minutes. */
#include "internal.h"

#define FINE TT__WAITS_FINE
#define COARSE TT__WAITS_COARSE
#define RATIO_SHIFT (TT__WAITS_COARSE_SHIFT - TT__WAITS_FINE_SHIFT)

static void row_move(tt__waits_row to, tt__waits_row from)
{
	for (unsigned r = 0; r < TT__WAITS_NROWS; r++) {
		uint32_t v = atomic_load_explicit(&from[r],
						  memory_order_relaxed);
		if (v) {
			tt__waits_add(&to[r], v);
			atomic_store_explicit(&from[r], 0,
					      memory_order_relaxed);
		}
	}
}

/* The cell index of epoch k (negative before the first fold). */
static inline unsigned ix(int64_t k, unsigned n)
{
	return (unsigned)((uint64_t)k & (n - 1));
}

/* Where epoch k of width 2^shift ends, in ns. */
static inline int64_t epoch_end(int64_t k, int shift)
{
	return (k + 1) * ((int64_t)1 << shift);
}

static inline int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

void tt__waits_advance(tt__waits *w, int64_t e)
{
	int64_t end = atomic_load_explicit(&w->fine_end, memory_order_relaxed);
	if (w->cur == NULL && e <= end) {
		/* The first stamp, in the zeroed rings' epoch or before. */
		w->cur = &w->fine[ix(end, FINE)];
		return;
	}
	TT_ASSERT(e > end);
	int64_t cend = end >> RATIO_SHIFT, ncend = e >> RATIO_SHIFT;

	/* Coarse epochs (cend - COARSE, ncend - COARSE] leave the window. */
	for (int64_t c = cend - COARSE + 1; c <= min64(ncend - COARSE, cend);
	     c++)
		row_move(w->old, w->coarse[ix(c, COARSE)]);

	/* Fine epochs (end - FINE, e - FINE] leave the fine ring. */
	for (int64_t f = end - FINE + 1; f <= min64(e - FINE, end); f++) {
		int64_t c = f >> RATIO_SHIFT;
		row_move(c > ncend - COARSE ? w->coarse[ix(c, COARSE)] : w->old,
			 w->fine[ix(f, FINE)]);
	}
	atomic_store_explicit(&w->fine_end, e, memory_order_relaxed);
	w->cur = &w->fine[ix(e, FINE)];
}

_Atomic uint32_t *tt__waits_cell_slow(tt__waits *w, int64_t since,
				      unsigned reason)
{
	int64_t end = atomic_load_explicit(&w->fine_end, memory_order_relaxed);
	int64_t f = since >> TT__WAITS_FINE_SHIFT;
	TT_ASSERT(f <= end);
	if (f > end - FINE)
		return &w->fine[ix(f, FINE)][reason];
	int64_t c = since >> TT__WAITS_COARSE_SHIFT;
	if (c > (end >> RATIO_SHIFT) - COARSE)
		return &w->coarse[ix(c, COARSE)][reason];
	return &w->old[reason];
}

/* Epochs are counted whole: epoch k of width 2^shift holds the parks in
 * [k << shift, (k + 1) << shift), all before a cutoff iff its end is. */
static void row_sums(const tt__waits_row row, int64_t last, int n,
		     const int64_t *cutoffs, uint64_t (*before)[TT_WAIT__COUNT],
		     uint64_t *total)
{
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
		uint32_t v = atomic_load_explicit(&row[r], memory_order_relaxed);
		if (v == 0)
			continue;
		total[r] += v;
		for (int k = 0; k < n; k++)
			if (last <= cutoffs[k])
				before[k][r] += v;
	}
}

void tt__waits_sums(const tt__waits *w, int n, const int64_t *cutoffs,
		    uint64_t (*before)[TT_WAIT__COUNT], uint64_t *total)
{
	int64_t end = atomic_load_explicit(&w->fine_end, memory_order_relaxed);
	int64_t cend = end >> RATIO_SHIFT;
	for (int64_t f = end - FINE + 1; f <= end; f++)
		row_sums(w->fine[ix(f, FINE)],
			 epoch_end(f, TT__WAITS_FINE_SHIFT), n, cutoffs, before,
			 total);
	/* A coarse cell holds only fine epochs that left the fine ring, so
	 * nothing newer than the end of fine epoch end - FINE: a coarse
	 * epoch that straddles a cutoff is whole before it if that is. */
	int64_t folded = epoch_end(end - FINE, TT__WAITS_FINE_SHIFT);
	for (int64_t c = cend - COARSE + 1; c <= cend; c++) {
		int64_t last = epoch_end(c, TT__WAITS_COARSE_SHIFT);
		row_sums(w->coarse[ix(c, COARSE)], last < folded ? last : folded,
			 n, cutoffs, before, total);
	}
	/* `old` holds coarse epochs up to cend - COARSE. */
	row_sums(w->old, epoch_end(cend - COARSE, TT__WAITS_COARSE_SHIFT), n,
		 cutoffs, before, total);
}

uint64_t tt__waits_before(const tt__waits *w, unsigned reason, int64_t cutoff)
{
	uint64_t before[1][TT_WAIT__COUNT] = {{0}}, total[TT_WAIT__COUNT] = {0};
	tt__waits_sums(w, 1, &cutoff, before, total);
	uint64_t n = 0;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		if (reason == TT_WAIT__COUNT || r == reason)
			n += before[0][r];
	return n;
}

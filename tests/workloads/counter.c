/* counter: the demo workload. Prints "counter N" every 200 ms, N going up by
 * one each time. The counter lives in three places (a static, a heap copy and
 * a local that the compiler keeps in a register or on the stack); they must
 * agree with the last printed value on every step, so a restore that loses or
 * rewinds any of them is caught on the next step or at SIGTERM. */
#include "workload.h"

static uint64_t counter;     /* .bss */
static uint64_t bad_steps;   /* steps where the copies disagreed */
static uint64_t first_bad_expected, first_bad_static, first_bad_heap;

int main(int argc, char **argv)
{
	wl_init(argc, argv, "counter");

	uint64_t *heap_copy = malloc(sizeof(*heap_copy));
	if (!heap_copy)
		wl_die("malloc failed");
	*heap_copy = 0;
	uint64_t last_printed = 0; /* local */

	wl_ready();

	while (!wl_stop) {
		/* All copies must still hold the last printed value. */
		if (counter != last_printed || *heap_copy != last_printed) {
			if (bad_steps++ == 0) {
				first_bad_expected = last_printed;
				first_bad_static = counter;
				first_bad_heap = *heap_copy;
			}
			/* Resynchronise so one glitch is reported once. */
			counter = last_printed;
		}
		counter++;
		*heap_copy = counter;
		last_printed = counter;
		wl_printf("counter %llu\n", (unsigned long long)counter);
		wl_sleep_ms(200);
	}

	WL_CHECK(bad_steps == 0,
		 "counter not monotonic in %llu step(s), first: last printed %llu, static %llu, heap %llu",
		 (unsigned long long)bad_steps, (unsigned long long)first_bad_expected,
		 (unsigned long long)first_bad_static, (unsigned long long)first_bad_heap);
	WL_CHECK(counter == last_printed, "static counter %llu != last printed %llu",
		 (unsigned long long)counter, (unsigned long long)last_printed);
	WL_CHECK(*heap_copy == last_printed, "heap counter %llu != last printed %llu",
		 (unsigned long long)*heap_copy, (unsigned long long)last_printed);
	WL_CHECK(counter >= 1, "counter never advanced (%llu)", (unsigned long long)counter);
	wl_printf("final counter %llu\n", (unsigned long long)counter);
	wl_finish();
}

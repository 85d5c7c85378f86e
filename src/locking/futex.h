// Sleeping on, and waking, a 32-bit word in memory shared between processes (Linux futex).
//
// Lock waiters sleep on the wake word of a lock file's mapped header page; every release bumps
// it and wakes them. The kernel record locks stay the only truth: a wake-up only means "try
// again", and a sleep is always bounded, because a killed holder releases its record locks
// without bumping the word.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace imgstore::locking {

// Sleeps while *word == expected, at most `timeout`; spurious returns are allowed.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::nanoseconds timeout);
// Wakes every sleeper on the word.
void FutexWakeAll(std::atomic<uint32_t>* word);

}  // namespace imgstore::locking

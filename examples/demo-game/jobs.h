// A small worker pool for per-frame jobs. Each job runs inside a frame scope on
// its worker, so its temporaries come from that worker's frame arena; workers call
// no frame markers (their arenas follow the main loop's frame number).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "scopes.h"

class JobPool {
public:
    using Job = std::function<void()>;

    explicit JobPool(int workers)
    {
        for (int i = 0; i < workers; i++)
            threads_.emplace_back([this] { loop(); });
    }

    ~JobPool()
    {
        {
            std::lock_guard<std::mutex> lock(m_);
            quit_ = true;
        }
        wake_.notify_all();
        for (auto &t : threads_)
            t.join();
    }

    // Starts the jobs and returns at once. The pool keeps only a pointer: the
    // caller's vector (frame memory, usually) must live until wait() returns.
    void start(const std::vector<Job> *jobs)
    {
        {
            std::lock_guard<std::mutex> lock(m_);
            jobs_ = jobs;
            next_ = 0;
            finished_ = 0;
        }
        wake_.notify_all();
    }

    void wait()
    {
        std::unique_lock<std::mutex> lock(m_);
        done_.wait(lock, [this] { return !jobs_ || finished_ == jobs_->size(); });
        jobs_ = nullptr;
    }

private:
    void loop()
    {
        std::unique_lock<std::mutex> lock(m_);
        for (;;) {
            wake_.wait(lock, [this] { return quit_ || (jobs_ && next_ < jobs_->size()); });
            if (quit_)
                return;
            const Job &job = (*jobs_)[next_++];
            lock.unlock();
            {
                demo::frame_scope scope;
                job();
            }
            lock.lock();
            if (++finished_ == jobs_->size())
                done_.notify_all();
        }
    }

    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    const std::vector<Job> *jobs_ = nullptr;
    size_t next_ = 0, finished_ = 0;
    bool quit_ = false;
};

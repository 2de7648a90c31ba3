// A C++ plugin for plugin_host.c, loaded with dlopen. It allocates with operator new
// (memory the C side later hands back for delete), frees memory the C side got from
// malloc, and throws and catches exceptions internally (exception objects are
// allocated by the C++ runtime through malloc).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Record {
    std::string name;
    std::vector<long> values;
};

// Throws on anything that is not a decimal number in [lo, hi].
long parse_number(const std::string &text, long lo, long hi)
{
    size_t used = 0;
    long v = std::stol(text, &used); // std::invalid_argument, std::out_of_range
    if (used != text.size())
        throw std::invalid_argument("trailing characters in '" + text + "'");
    if (v < lo || v > hi)
        throw std::range_error(text + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
}

} // namespace

extern "C" {

// A new[]-allocated, NUL-terminated string; give it back with plugin_free_string.
char *plugin_make_string(const char *word, int repeat)
{
    std::string s;
    for (int i = 0; i < repeat; i++) {
        s += word;
        s += i + 1 < repeat ? "-" : "";
    }
    char *out = new char[s.size() + 1];
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

void plugin_free_string(char *s) { delete[] s; }

// An opaque object made with new; its members own more heap memory.
void *plugin_record_new(const char *name, int count)
{
    auto r = std::make_unique<Record>();
    r->name = name;
    for (int i = 0; i < count; i++)
        r->values.push_back(static_cast<long>(i) * i - count);
    return r.release();
}

long plugin_record_sum(const void *handle)
{
    const Record *r = static_cast<const Record *>(handle);
    long sum = static_cast<long>(r->name.size());
    for (long v : r->values)
        sum += v;
    return sum;
}

void plugin_record_free(void *handle) { delete static_cast<Record *>(handle); }

// Takes ownership of a buffer the caller got from malloc, and frees it with free().
// Returns the sum of its bytes.
unsigned long plugin_consume_buffer(unsigned char *buf, size_t size)
{
    std::vector<unsigned char> copy(buf, buf + size);
    std::free(buf);
    unsigned long sum = 0;
    for (unsigned char c : copy)
        sum += c;
    return sum;
}

// Parses each word; bad ones make exceptions that are caught here. Returns the sum of
// the good numbers and stores the number of failures.
long plugin_parse_all(const char *const *words, int n, int *failures)
{
    long sum = 0;
    *failures = 0;
    for (int i = 0; i < n; i++) {
        try {
            sum += parse_number(words[i], -1000000, 1000000);
        } catch (const std::exception &e) {
            // The message itself is heap memory made while throwing.
            ++*failures;
            sum += static_cast<long>(std::string(e.what()).size());
        }
    }
    return sum;
}

} // extern "C"

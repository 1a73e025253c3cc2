#include "brainsam/progress.h"
#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#if __cplusplus >= 201703L
#include <string_view>
#endif
#if __cplusplus >= 202002L
#include <ranges>
#endif

#ifdef __GNUC__
#pragma GCC diagnostic ignored "-Wmissing-declarations"
#pragma GCC diagnostic ignored "-Wshadow"
#ifdef __clang__
#pragma clang diagnostic ignored "-Wdollar-in-identifier-extension"
#endif // __clang__
#endif // __GNUC__

namespace rust {
inline namespace cxxbridge1 {
// #include "rust/cxx.h"

#ifndef CXXBRIDGE1_PANIC
#define CXXBRIDGE1_PANIC
template <typename Exception>
void panic [[noreturn]] (const char *msg);
#endif // CXXBRIDGE1_PANIC

struct unsafe_bitcopy_t;

namespace {
template <typename T>
class impl;
} // namespace

template <typename T>
::std::size_t size_of();
template <typename T>
::std::size_t align_of();

#ifndef CXXBRIDGE1_RUST_STRING
#define CXXBRIDGE1_RUST_STRING
class String final {
public:
  String() noexcept;
  String(const String &) noexcept;
  String(String &&) noexcept;
  ~String() noexcept;

  String(const std::string &);
  String(const char *);
  String(const char *, std::size_t);
  String(const char16_t *);
  String(const char16_t *, std::size_t);
#ifdef __cpp_char8_t
  String(const char8_t *s);
  String(const char8_t *s, std::size_t len);
#endif

  static String lossy(const std::string &) noexcept;
  static String lossy(const char *) noexcept;
  static String lossy(const char *, std::size_t) noexcept;
  static String lossy(const char16_t *) noexcept;
  static String lossy(const char16_t *, std::size_t) noexcept;

  String &operator=(const String &) & noexcept;
  String &operator=(String &&) & noexcept;

  explicit operator std::string() const;

  const char *data() const noexcept;
  char *data() noexcept;

  std::size_t size() const noexcept;
  std::size_t length() const noexcept;
  bool empty() const noexcept;

  const char *c_str() noexcept;

  std::size_t capacity() const noexcept;
  void reserve(size_t new_cap) noexcept;

  using iterator = char *;
  iterator begin() noexcept;
  iterator end() noexcept;

  using const_iterator = const char *;
  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;
  const_iterator cbegin() const noexcept;
  const_iterator cend() const noexcept;

  bool operator==(const String &) const noexcept;
  bool operator!=(const String &) const noexcept;
  bool operator<(const String &) const noexcept;
  bool operator<=(const String &) const noexcept;
  bool operator>(const String &) const noexcept;
  bool operator>=(const String &) const noexcept;

  void swap(String &) noexcept;

  String(unsafe_bitcopy_t, const String &) noexcept;

private:
  struct lossy_t;
  String(lossy_t, const char *, std::size_t) noexcept;
  String(lossy_t, const char16_t *, std::size_t) noexcept;
  friend void swap(String &lhs, String &rhs) noexcept { lhs.swap(rhs); }

  std::array<std::uintptr_t, 3> repr;
};
#endif // CXXBRIDGE1_RUST_STRING

#ifndef CXXBRIDGE1_RUST_STR
#define CXXBRIDGE1_RUST_STR
class Str final {
public:
  Str() noexcept;
  Str(const String &) noexcept;
  Str(const std::string &);
  Str(const char *);
  Str(const char *, std::size_t);

  Str &operator=(const Str &) & noexcept = default;

  explicit operator std::string() const;
#if __cplusplus >= 201703L
  explicit operator std::string_view() const;
#endif

  const char *data() const noexcept;
  std::size_t size() const noexcept;
  std::size_t length() const noexcept;
  bool empty() const noexcept;

  Str(const Str &) noexcept = default;
  ~Str() noexcept = default;

  using iterator = const char *;
  using const_iterator = const char *;
  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;
  const_iterator cbegin() const noexcept;
  const_iterator cend() const noexcept;

  bool operator==(const Str &) const noexcept;
  bool operator!=(const Str &) const noexcept;
  bool operator<(const Str &) const noexcept;
  bool operator<=(const Str &) const noexcept;
  bool operator>(const Str &) const noexcept;
  bool operator>=(const Str &) const noexcept;

  void swap(Str &) noexcept;

private:
  class uninit;
  Str(uninit) noexcept;
  friend impl<Str>;

  std::array<std::uintptr_t, 2> repr;
};
#endif // CXXBRIDGE1_RUST_STR

#ifndef CXXBRIDGE1_RUST_SLICE
#define CXXBRIDGE1_RUST_SLICE
namespace detail {
template <bool>
struct copy_assignable_if {};

template <>
struct copy_assignable_if<false> {
  copy_assignable_if() noexcept = default;
  copy_assignable_if(const copy_assignable_if &) noexcept = default;
  copy_assignable_if &operator=(const copy_assignable_if &) & noexcept = delete;
  copy_assignable_if &operator=(copy_assignable_if &&) & noexcept = default;
};
} // namespace detail

template <typename T>
class Slice final
    : private detail::copy_assignable_if<std::is_const<T>::value> {
public:
  using value_type = T;

  Slice() noexcept;
  Slice(T *, std::size_t count) noexcept;

  template <typename C>
  explicit Slice(C &c) : Slice(c.data(), c.size()) {}

  Slice &operator=(const Slice<T> &) & noexcept = default;
  Slice &operator=(Slice<T> &&) & noexcept = default;

  T *data() const noexcept;
  std::size_t size() const noexcept;
  std::size_t length() const noexcept;
  bool empty() const noexcept;

  T &operator[](std::size_t n) const noexcept;
  T &at(std::size_t n) const;
  T &front() const noexcept;
  T &back() const noexcept;

  Slice(const Slice<T> &) noexcept = default;
  ~Slice() noexcept = default;

  class iterator;
  iterator begin() const noexcept;
  iterator end() const noexcept;

  void swap(Slice &) noexcept;

private:
  class uninit;
  Slice(uninit) noexcept;
  friend impl<Slice>;
  friend void sliceInit(void *, const void *, std::size_t) noexcept;
  friend void *slicePtr(const void *) noexcept;
  friend std::size_t sliceLen(const void *) noexcept;

  std::array<std::uintptr_t, 2> repr;
};

#ifdef __cpp_deduction_guides
template <typename C>
explicit Slice(C &c)
    -> Slice<std::remove_reference_t<decltype(*std::declval<C>().data())>>;
#endif // __cpp_deduction_guides

template <typename T>
class Slice<T>::iterator final {
public:
#if __cplusplus >= 202002L
  using iterator_category = std::contiguous_iterator_tag;
#else
  using iterator_category = std::random_access_iterator_tag;
#endif
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  using pointer = typename std::add_pointer<T>::type;
  using reference = typename std::add_lvalue_reference<T>::type;

  reference operator*() const noexcept;
  pointer operator->() const noexcept;
  reference operator[](difference_type) const noexcept;

  iterator &operator++() noexcept;
  iterator operator++(int) noexcept;
  iterator &operator--() noexcept;
  iterator operator--(int) noexcept;

  iterator &operator+=(difference_type) noexcept;
  iterator &operator-=(difference_type) noexcept;
  iterator operator+(difference_type) const noexcept;
  friend inline iterator operator+(difference_type lhs, iterator rhs) noexcept {
    return rhs + lhs;
  }
  iterator operator-(difference_type) const noexcept;
  difference_type operator-(const iterator &) const noexcept;

  bool operator==(const iterator &) const noexcept;
  bool operator!=(const iterator &) const noexcept;
  bool operator<(const iterator &) const noexcept;
  bool operator<=(const iterator &) const noexcept;
  bool operator>(const iterator &) const noexcept;
  bool operator>=(const iterator &) const noexcept;

private:
  friend class Slice;
  void *pos;
  std::size_t stride;
};

template <typename T>
Slice<T>::Slice() noexcept {
  sliceInit(this, reinterpret_cast<void *>(align_of<T>()), 0);
}

template <typename T>
Slice<T>::Slice(T *s, std::size_t count) noexcept {
  assert(s != nullptr || count == 0);
  sliceInit(this,
            s == nullptr && count == 0
                ? reinterpret_cast<void *>(align_of<T>())
                : const_cast<typename std::remove_const<T>::type *>(s),
            count);
}

template <typename T>
T *Slice<T>::data() const noexcept {
  return reinterpret_cast<T *>(slicePtr(this));
}

template <typename T>
std::size_t Slice<T>::size() const noexcept {
  return sliceLen(this);
}

template <typename T>
std::size_t Slice<T>::length() const noexcept {
  return this->size();
}

template <typename T>
bool Slice<T>::empty() const noexcept {
  return this->size() == 0;
}

template <typename T>
T &Slice<T>::operator[](std::size_t n) const noexcept {
  assert(n < this->size());
  auto ptr = static_cast<char *>(slicePtr(this)) + size_of<T>() * n;
  return *reinterpret_cast<T *>(ptr);
}

template <typename T>
T &Slice<T>::at(std::size_t n) const {
  if (n >= this->size()) {
    panic<std::out_of_range>("rust::Slice index out of range");
  }
  return (*this)[n];
}

template <typename T>
T &Slice<T>::front() const noexcept {
  assert(!this->empty());
  return (*this)[0];
}

template <typename T>
T &Slice<T>::back() const noexcept {
  assert(!this->empty());
  return (*this)[this->size() - 1];
}

template <typename T>
typename Slice<T>::iterator::reference
Slice<T>::iterator::operator*() const noexcept {
  return *static_cast<T *>(this->pos);
}

template <typename T>
typename Slice<T>::iterator::pointer
Slice<T>::iterator::operator->() const noexcept {
  return static_cast<T *>(this->pos);
}

template <typename T>
typename Slice<T>::iterator::reference Slice<T>::iterator::operator[](
    typename Slice<T>::iterator::difference_type n) const noexcept {
  auto ptr = static_cast<char *>(this->pos) + this->stride * n;
  return *reinterpret_cast<T *>(ptr);
}

template <typename T>
typename Slice<T>::iterator &Slice<T>::iterator::operator++() noexcept {
  this->pos = static_cast<char *>(this->pos) + this->stride;
  return *this;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::iterator::operator++(int) noexcept {
  auto ret = iterator(*this);
  this->pos = static_cast<char *>(this->pos) + this->stride;
  return ret;
}

template <typename T>
typename Slice<T>::iterator &Slice<T>::iterator::operator--() noexcept {
  this->pos = static_cast<char *>(this->pos) - this->stride;
  return *this;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::iterator::operator--(int) noexcept {
  auto ret = iterator(*this);
  this->pos = static_cast<char *>(this->pos) - this->stride;
  return ret;
}

template <typename T>
typename Slice<T>::iterator &Slice<T>::iterator::operator+=(
    typename Slice<T>::iterator::difference_type n) noexcept {
  this->pos = static_cast<char *>(this->pos) + this->stride * n;
  return *this;
}

template <typename T>
typename Slice<T>::iterator &Slice<T>::iterator::operator-=(
    typename Slice<T>::iterator::difference_type n) noexcept {
  this->pos = static_cast<char *>(this->pos) - this->stride * n;
  return *this;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::iterator::operator+(
    typename Slice<T>::iterator::difference_type n) const noexcept {
  auto ret = iterator(*this);
  ret.pos = static_cast<char *>(this->pos) + this->stride * n;
  return ret;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::iterator::operator-(
    typename Slice<T>::iterator::difference_type n) const noexcept {
  auto ret = iterator(*this);
  ret.pos = static_cast<char *>(this->pos) - this->stride * n;
  return ret;
}

template <typename T>
typename Slice<T>::iterator::difference_type
Slice<T>::iterator::operator-(const iterator &other) const noexcept {
  auto diff = std::distance(static_cast<char *>(other.pos),
                            static_cast<char *>(this->pos));
  return diff / static_cast<typename Slice<T>::iterator::difference_type>(
                    this->stride);
}

template <typename T>
bool Slice<T>::iterator::operator==(const iterator &other) const noexcept {
  return this->pos == other.pos;
}

template <typename T>
bool Slice<T>::iterator::operator!=(const iterator &other) const noexcept {
  return this->pos != other.pos;
}

template <typename T>
bool Slice<T>::iterator::operator<(const iterator &other) const noexcept {
  return this->pos < other.pos;
}

template <typename T>
bool Slice<T>::iterator::operator<=(const iterator &other) const noexcept {
  return this->pos <= other.pos;
}

template <typename T>
bool Slice<T>::iterator::operator>(const iterator &other) const noexcept {
  return this->pos > other.pos;
}

template <typename T>
bool Slice<T>::iterator::operator>=(const iterator &other) const noexcept {
  return this->pos >= other.pos;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::begin() const noexcept {
  iterator it;
  it.pos = slicePtr(this);
  it.stride = size_of<T>();
  return it;
}

template <typename T>
typename Slice<T>::iterator Slice<T>::end() const noexcept {
  iterator it = this->begin();
  it.pos = static_cast<char *>(it.pos) + it.stride * this->size();
  return it;
}

template <typename T>
void Slice<T>::swap(Slice &rhs) noexcept {
  std::swap(*this, rhs);
}
#endif // CXXBRIDGE1_RUST_SLICE

#ifndef CXXBRIDGE1_RUST_BOX
#define CXXBRIDGE1_RUST_BOX
template <typename T>
class Box final {
public:
  using element_type = T;
  using const_pointer =
      typename std::add_pointer<typename std::add_const<T>::type>::type;
  using pointer = typename std::add_pointer<T>::type;

  Box() = delete;
  Box(Box &&) noexcept;
  ~Box() noexcept;

  explicit Box(const T &);
  explicit Box(T &&);

  Box &operator=(Box &&) & noexcept;

  const T *operator->() const noexcept;
  const T &operator*() const noexcept;
  T *operator->() noexcept;
  T &operator*() noexcept;

  template <typename... Fields>
  static Box in_place(Fields &&...);

  void swap(Box &) noexcept;

  static Box from_raw(T *) noexcept;

  T *into_raw() noexcept;

  /* Deprecated */ using value_type = element_type;

private:
  class uninit;
  class allocation;
  Box(uninit) noexcept;
  void drop() noexcept;

  friend void swap(Box &lhs, Box &rhs) noexcept { lhs.swap(rhs); }

  T *ptr;
};

template <typename T>
class Box<T>::uninit {};

template <typename T>
class Box<T>::allocation {
  static T *alloc() noexcept;
  static void dealloc(T *) noexcept;

public:
  allocation() noexcept : ptr(alloc()) {}
  ~allocation() noexcept {
    if (this->ptr) {
      dealloc(this->ptr);
    }
  }
  T *ptr;
};

template <typename T>
Box<T>::Box(Box &&other) noexcept : ptr(other.ptr) {
  other.ptr = nullptr;
}

template <typename T>
Box<T>::Box(const T &val) {
  allocation alloc;
  ::new (alloc.ptr) T(val);
  this->ptr = alloc.ptr;
  alloc.ptr = nullptr;
}

template <typename T>
Box<T>::Box(T &&val) {
  allocation alloc;
  ::new (alloc.ptr) T(std::move(val));
  this->ptr = alloc.ptr;
  alloc.ptr = nullptr;
}

template <typename T>
Box<T>::~Box() noexcept {
  if (this->ptr) {
    this->drop();
  }
}

template <typename T>
Box<T> &Box<T>::operator=(Box &&other) & noexcept {
  if (this->ptr) {
    this->drop();
  }
  this->ptr = other.ptr;
  other.ptr = nullptr;
  return *this;
}

template <typename T>
const T *Box<T>::operator->() const noexcept {
  return this->ptr;
}

template <typename T>
const T &Box<T>::operator*() const noexcept {
  return *this->ptr;
}

template <typename T>
T *Box<T>::operator->() noexcept {
  return this->ptr;
}

template <typename T>
T &Box<T>::operator*() noexcept {
  return *this->ptr;
}

template <typename T>
template <typename... Fields>
Box<T> Box<T>::in_place(Fields &&...fields) {
  allocation alloc;
  auto ptr = alloc.ptr;
  ::new (ptr) T{std::forward<Fields>(fields)...};
  alloc.ptr = nullptr;
  return from_raw(ptr);
}

template <typename T>
void Box<T>::swap(Box &rhs) noexcept {
  using std::swap;
  swap(this->ptr, rhs.ptr);
}

template <typename T>
Box<T> Box<T>::from_raw(T *raw) noexcept {
  Box box = uninit{};
  box.ptr = raw;
  return box;
}

template <typename T>
T *Box<T>::into_raw() noexcept {
  T *raw = this->ptr;
  this->ptr = nullptr;
  return raw;
}

template <typename T>
Box<T>::Box(uninit) noexcept {}
#endif // CXXBRIDGE1_RUST_BOX

#ifndef CXXBRIDGE1_RUST_BITCOPY_T
#define CXXBRIDGE1_RUST_BITCOPY_T
struct unsafe_bitcopy_t final {
  explicit unsafe_bitcopy_t() = default;
};
#endif // CXXBRIDGE1_RUST_BITCOPY_T

#ifndef CXXBRIDGE1_RUST_VEC
#define CXXBRIDGE1_RUST_VEC
template <typename T>
class Vec final {
public:
  using value_type = T;

  Vec() noexcept;
  Vec(std::initializer_list<T>);
  Vec(const Vec &);
  Vec(Vec &&) noexcept;
  ~Vec() noexcept;

  Vec &operator=(Vec &&) & noexcept;
  Vec &operator=(const Vec &) &;

  std::size_t size() const noexcept;
  bool empty() const noexcept;
  const T *data() const noexcept;
  T *data() noexcept;
  std::size_t capacity() const noexcept;

  const T &operator[](std::size_t n) const noexcept;
  const T &at(std::size_t n) const;
  const T &front() const noexcept;
  const T &back() const noexcept;

  T &operator[](std::size_t n) noexcept;
  T &at(std::size_t n);
  T &front() noexcept;
  T &back() noexcept;

  void reserve(std::size_t new_cap);
  void push_back(const T &value);
  void push_back(T &&value);
  template <typename... Args>
  void emplace_back(Args &&...args);
  void truncate(std::size_t len);
  void clear();

  using iterator = typename Slice<T>::iterator;
  iterator begin() noexcept;
  iterator end() noexcept;

  using const_iterator = typename Slice<const T>::iterator;
  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;
  const_iterator cbegin() const noexcept;
  const_iterator cend() const noexcept;

  void swap(Vec &) noexcept;

  Vec(unsafe_bitcopy_t, const Vec &) noexcept;

private:
  void reserve_total(std::size_t new_cap) noexcept;
  void set_len(std::size_t len) noexcept;
  void drop() noexcept;

  friend void swap(Vec &lhs, Vec &rhs) noexcept { lhs.swap(rhs); }

  std::array<std::uintptr_t, 3> repr;
};

template <typename T>
Vec<T>::Vec(std::initializer_list<T> init) : Vec{} {
  this->reserve_total(init.size());
  std::move(init.begin(), init.end(), std::back_inserter(*this));
}

template <typename T>
Vec<T>::Vec(const Vec &other) : Vec() {
  this->reserve_total(other.size());
  std::copy(other.begin(), other.end(), std::back_inserter(*this));
}

template <typename T>
Vec<T>::Vec(Vec &&other) noexcept : repr(other.repr) {
  new (&other) Vec();
}

template <typename T>
Vec<T>::~Vec() noexcept {
  this->drop();
}

template <typename T>
Vec<T> &Vec<T>::operator=(Vec &&other) & noexcept {
  this->drop();
  this->repr = other.repr;
  new (&other) Vec();
  return *this;
}

template <typename T>
Vec<T> &Vec<T>::operator=(const Vec &other) & {
  if (this != &other) {
    this->drop();
    new (this) Vec(other);
  }
  return *this;
}

template <typename T>
bool Vec<T>::empty() const noexcept {
  return this->size() == 0;
}

template <typename T>
const T &Vec<T>::operator[](std::size_t n) const noexcept {
  assert(n < this->size());
  auto data = reinterpret_cast<const char *>(this->data());
  return *reinterpret_cast<const T *>(data + n * size_of<T>());
}

template <typename T>
const T &Vec<T>::at(std::size_t n) const {
  if (n >= this->size()) {
    panic<std::out_of_range>("rust::Vec index out of range");
  }
  return (*this)[n];
}

template <typename T>
const T &Vec<T>::front() const noexcept {
  assert(!this->empty());
  return (*this)[0];
}

template <typename T>
const T &Vec<T>::back() const noexcept {
  assert(!this->empty());
  return (*this)[this->size() - 1];
}

template <typename T>
T &Vec<T>::operator[](std::size_t n) noexcept {
  assert(n < this->size());
  auto data = reinterpret_cast<char *>(this->data());
  return *reinterpret_cast<T *>(data + n * size_of<T>());
}

template <typename T>
T &Vec<T>::at(std::size_t n) {
  if (n >= this->size()) {
    panic<std::out_of_range>("rust::Vec index out of range");
  }
  return (*this)[n];
}

template <typename T>
T &Vec<T>::front() noexcept {
  assert(!this->empty());
  return (*this)[0];
}

template <typename T>
T &Vec<T>::back() noexcept {
  assert(!this->empty());
  return (*this)[this->size() - 1];
}

template <typename T>
void Vec<T>::reserve(std::size_t new_cap) {
  this->reserve_total(new_cap);
}

template <typename T>
void Vec<T>::push_back(const T &value) {
  this->emplace_back(value);
}

template <typename T>
void Vec<T>::push_back(T &&value) {
  this->emplace_back(std::move(value));
}

template <typename T>
template <typename... Args>
void Vec<T>::emplace_back(Args &&...args) {
  auto size = this->size();
  this->reserve_total(size + 1);
  ::new (reinterpret_cast<T *>(reinterpret_cast<char *>(this->data()) +
                               size * size_of<T>()))
      T(std::forward<Args>(args)...);
  this->set_len(size + 1);
}

template <typename T>
void Vec<T>::clear() {
  this->truncate(0);
}

template <typename T>
typename Vec<T>::iterator Vec<T>::begin() noexcept {
  return Slice<T>(this->data(), this->size()).begin();
}

template <typename T>
typename Vec<T>::iterator Vec<T>::end() noexcept {
  return Slice<T>(this->data(), this->size()).end();
}

template <typename T>
typename Vec<T>::const_iterator Vec<T>::begin() const noexcept {
  return this->cbegin();
}

template <typename T>
typename Vec<T>::const_iterator Vec<T>::end() const noexcept {
  return this->cend();
}

template <typename T>
typename Vec<T>::const_iterator Vec<T>::cbegin() const noexcept {
  return Slice<const T>(this->data(), this->size()).begin();
}

template <typename T>
typename Vec<T>::const_iterator Vec<T>::cend() const noexcept {
  return Slice<const T>(this->data(), this->size()).end();
}

template <typename T>
void Vec<T>::swap(Vec &rhs) noexcept {
  using std::swap;
  swap(this->repr, rhs.repr);
}

template <typename T>
Vec<T>::Vec(unsafe_bitcopy_t, const Vec &bits) noexcept : repr(bits.repr) {}
#endif // CXXBRIDGE1_RUST_VEC

#ifndef CXXBRIDGE1_RUST_ERROR
#define CXXBRIDGE1_RUST_ERROR
class Error final : public std::exception {
public:
  Error(const Error &);
  Error(Error &&) noexcept;
  ~Error() noexcept override;

  Error &operator=(const Error &) &;
  Error &operator=(Error &&) & noexcept;

  const char *what() const noexcept override;

private:
  Error() noexcept = default;
  friend impl<Error>;
  const char *msg;
  std::size_t len;
};
#endif // CXXBRIDGE1_RUST_ERROR

#ifndef CXXBRIDGE1_RUST_OPAQUE
#define CXXBRIDGE1_RUST_OPAQUE
class Opaque {
public:
  Opaque() = delete;
  Opaque(const Opaque &) = delete;
  ~Opaque() = delete;
};
#endif // CXXBRIDGE1_RUST_OPAQUE

#ifndef CXXBRIDGE1_IS_COMPLETE
#define CXXBRIDGE1_IS_COMPLETE
namespace detail {
namespace {
template <typename T, typename = std::size_t>
struct is_complete : std::false_type {};
template <typename T>
struct is_complete<T, decltype(sizeof(T))> : std::true_type {};
} // namespace
} // namespace detail
#endif // CXXBRIDGE1_IS_COMPLETE

#ifndef CXXBRIDGE1_LAYOUT
#define CXXBRIDGE1_LAYOUT
class layout {
  template <typename T>
  friend std::size_t size_of();
  template <typename T>
  friend std::size_t align_of();
  template <typename T>
  static typename std::enable_if<std::is_base_of<Opaque, T>::value,
                                 std::size_t>::type
  do_size_of() {
    return T::layout::size();
  }
  template <typename T>
  static typename std::enable_if<!std::is_base_of<Opaque, T>::value,
                                 std::size_t>::type
  do_size_of() {
    return sizeof(T);
  }
  template <typename T>
  static
      typename std::enable_if<detail::is_complete<T>::value, std::size_t>::type
      size_of() {
    return do_size_of<T>();
  }
  template <typename T>
  static typename std::enable_if<std::is_base_of<Opaque, T>::value,
                                 std::size_t>::type
  do_align_of() {
    return T::layout::align();
  }
  template <typename T>
  static typename std::enable_if<!std::is_base_of<Opaque, T>::value,
                                 std::size_t>::type
  do_align_of() {
    return alignof(T);
  }
  template <typename T>
  static
      typename std::enable_if<detail::is_complete<T>::value, std::size_t>::type
      align_of() {
    return do_align_of<T>();
  }
};

template <typename T>
std::size_t size_of() {
  return layout::size_of<T>();
}

template <typename T>
std::size_t align_of() {
  return layout::align_of<T>();
}
#endif // CXXBRIDGE1_LAYOUT

class Str::uninit {};
inline Str::Str(uninit) noexcept {}

namespace repr {
using Fat = ::std::array<::std::uintptr_t, 2>;

struct PtrLen final {
  void *ptr;
  ::std::size_t len;
};
} // namespace repr

namespace detail {
template <typename T, typename = void *>
struct operator_new {
  void *operator()(::std::size_t sz) { return ::operator new(sz); }
};

template <typename T>
struct operator_new<T, decltype(T::operator new(sizeof(T)))> {
  void *operator()(::std::size_t sz) { return T::operator new(sz); }
};
} // namespace detail

template <typename T>
union ManuallyDrop {
  T value;
  ManuallyDrop(T &&value) : value(::std::move(value)) {}
  ~ManuallyDrop() {}
};

template <typename T>
union MaybeUninit {
  T value;
  void *operator new(::std::size_t sz) { return detail::operator_new<T>{}(sz); }
  MaybeUninit() {}
  ~MaybeUninit() {}
};

namespace {
template <>
class impl<Str> final {
public:
  static Str new_unchecked(repr::Fat repr) noexcept {
    Str str = Str::uninit{};
    str.repr = repr;
    return str;
  }
};

template <>
class impl<Error> final {
public:
  static Error error(repr::PtrLen repr) noexcept {
    Error error;
    error.msg = static_cast<char const *>(repr.ptr);
    error.len = repr.len;
    return error;
  }
};
} // namespace
} // namespace cxxbridge1
} // namespace rust

#if __cplusplus >= 201402L
#define CXX_DEFAULT_VALUE(value) = value
#else
#define CXX_DEFAULT_VALUE(value)
#endif

namespace brainsam {
  struct RuntimeInfo;
  enum class Device : ::std::uint32_t;
  enum class Precision : ::std::uint32_t;
  enum class Coordinates : ::std::uint32_t;
  struct SessionOptions;
  struct DeviceSpec;
  struct ModelOptions;
  struct VolumeGeometry;
  struct StructureStats;
  struct SliceRange;
  enum class FineTuneState : ::std::uint32_t;
  enum class FineTuneOutput : ::std::uint32_t;
  struct FineTuneOptions;
  struct FineTuneStatus;
  struct AdaptOptions;
  struct AdaptStatus;
  using ProgressCallback = ::brainsam::ProgressCallback;
  struct Model;
  struct Session;
  struct FineTune;
  struct AdaptPairs;
  struct Adapt;
}

namespace brainsam {
#ifndef CXXBRIDGE1_STRUCT_brainsam$RuntimeInfo
#define CXXBRIDGE1_STRUCT_brainsam$RuntimeInfo
// Runtime facts (see `brainsam_runtime_info` in the C API).
struct RuntimeInfo final {
  // BrainSAM's version, e.g. "0.1.0".
  ::rust::String brainsam_version;
  // The libtorch version BrainSAM was built against.
  ::rust::String libtorch_version;
  // Whether a CUDA device is usable.
  bool cuda_available CXX_DEFAULT_VALUE(false);
  // Number of CUDA devices.
  ::std::int64_t cuda_device_count CXX_DEFAULT_VALUE(0);
  // CPU threads libtorch uses.
  ::std::int32_t cpu_threads CXX_DEFAULT_VALUE(0);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$RuntimeInfo

#ifndef CXXBRIDGE1_ENUM_brainsam$Device
#define CXXBRIDGE1_ENUM_brainsam$Device
// Where a model runs.
enum class Device : ::std::uint32_t {
  // CUDA when available, else CPU.
  Auto = 0,
  // CPU.
  Cpu = 1,
  // The CUDA device `ModelOptions::device_index` (an error without it).
  Cuda = 2,
};
#endif // CXXBRIDGE1_ENUM_brainsam$Device

#ifndef CXXBRIDGE1_ENUM_brainsam$Precision
#define CXXBRIDGE1_ENUM_brainsam$Precision
// Precision of the image encoder; the mask decoder always runs in fp32.
enum class Precision : ::std::uint32_t {
  // bf16 on CUDA devices that support it (fp16 on older ones), fp32 on the CPU.
  Auto = 0,
  // fp32.
  Fp32 = 1,
  // bf16 (fp16 on CUDA devices without bf16).
  Bf16 = 2,
  // fp16.
  Fp16 = 3,
};
#endif // CXXBRIDGE1_ENUM_brainsam$Precision

#ifndef CXXBRIDGE1_ENUM_brainsam$Coordinates
#define CXXBRIDGE1_ENUM_brainsam$Coordinates
// The physical coordinate system of a volume's origin and direction.
enum class Coordinates : ::std::uint32_t {
  // Left-posterior-superior, as ITK and DICOM.
  Lps = 0,
  // Right-anterior-superior, as NIfTI and 3D Slicer.
  Ras = 1,
};
#endif // CXXBRIDGE1_ENUM_brainsam$Coordinates

#ifndef CXXBRIDGE1_STRUCT_brainsam$SessionOptions
#define CXXBRIDGE1_STRUCT_brainsam$SessionOptions
// Options of `Model::create_session_with_options`, as `brainsam_session_options`
// (all zeros: the defaults).
struct SessionOptions final {
  // Slices per image-encoder pass; 0: automatic.
  ::std::uint32_t batch_size CXX_DEFAULT_VALUE(0);
  // Skip mirror averaging in automatic segmentation.
  bool no_mirror_averaging CXX_DEFAULT_VALUE(false);
  // Skip the 3D clean-up of automatic segmentation.
  bool no_cleanup CXX_DEFAULT_VALUE(false);
  // 0 automatic, 1 on the device, 2 in host memory.
  ::std::uint32_t embedding_cache CXX_DEFAULT_VALUE(0);
  // Skip shift averaging in automatic segmentation.
  bool no_shift_averaging CXX_DEFAULT_VALUE(false);
  // Skip the models of other slice orientations in automatic segmentation.
  bool no_view_averaging CXX_DEFAULT_VALUE(false);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$SessionOptions

#ifndef CXXBRIDGE1_STRUCT_brainsam$DeviceSpec
#define CXXBRIDGE1_STRUCT_brainsam$DeviceSpec
// A device as `parse_device` reads it from a name.
struct DeviceSpec final {
  // Where the model runs.
  ::brainsam::Device device;
  // CUDA device number for `Device::Cuda`.
  ::std::uint32_t device_index CXX_DEFAULT_VALUE(0);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$DeviceSpec

#ifndef CXXBRIDGE1_STRUCT_brainsam$ModelOptions
#define CXXBRIDGE1_STRUCT_brainsam$ModelOptions
// Options of `load_model`.
struct ModelOptions final {
  // Weights file; empty for the bundled default model.
  ::rust::String checkpoint_path;
  // LoRA adapter file; empty for none.
  ::rust::String adapter_path;
  // Where the model runs.
  ::brainsam::Device device;
  // CUDA device number for `Device::Cuda` (0 for the first).
  ::std::uint32_t device_index CXX_DEFAULT_VALUE(0);
  // Precision of the image encoder.
  ::brainsam::Precision precision;

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$ModelOptions

#ifndef CXXBRIDGE1_STRUCT_brainsam$VolumeGeometry
#define CXXBRIDGE1_STRUCT_brainsam$VolumeGeometry
// Geometry of a voxel buffer, as `brainsam_volume_desc` in the C API: voxel
// (i, j, k) is `voxels[i + dims[0] * (j + dims[1] * k)]`.
struct VolumeGeometry final {
  // Voxels along i, j, k.
  ::std::array<::std::uint64_t, 3> dims;
  // Voxel size along i, j, k in millimetres (> 0).
  ::std::array<double, 3> spacing;
  // Physical position (mm) of the centre of voxel (0, 0, 0).
  ::std::array<double, 3> origin;
  // Row-major 3x3 direction matrix; column c is the direction of voxel axis c
  // (ITK's `GetDirection()` order).
  ::std::array<double, 9> direction;
  // The coordinate system of `origin` and `direction`.
  ::brainsam::Coordinates coordinates;

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$VolumeGeometry

#ifndef CXXBRIDGE1_STRUCT_brainsam$StructureStats
#define CXXBRIDGE1_STRUCT_brainsam$StructureStats
// Volume and confidence of one structure.
struct StructureStats final {
  // Voxels labelled with the structure.
  ::std::uint64_t voxels CXX_DEFAULT_VALUE(0);
  // Volume in mm³.
  double volume_mm3 CXX_DEFAULT_VALUE(0);
  // Mean model confidence in [0, 1].
  double confidence CXX_DEFAULT_VALUE(0);
  // Input-QC flags (`BRAINSAM_QC_*` bits of brainsam.h; 0: plausible for a T1 brain).
  ::std::uint32_t qc CXX_DEFAULT_VALUE(0);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$StructureStats

#ifndef CXXBRIDGE1_STRUCT_brainsam$SliceRange
#define CXXBRIDGE1_STRUCT_brainsam$SliceRange
// First and last slice (voxel indices along the slicing axis) of the region of
// interest.
struct SliceRange final {
  // First slice.
  ::std::uint64_t first CXX_DEFAULT_VALUE(0);
  // Last slice (inclusive).
  ::std::uint64_t last CXX_DEFAULT_VALUE(0);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$SliceRange

#ifndef CXXBRIDGE1_ENUM_brainsam$FineTuneState
#define CXXBRIDGE1_ENUM_brainsam$FineTuneState
// Where a fine-tuning run is (as `brainsam_fine_tune_state`).
enum class FineTuneState : ::std::uint32_t {
  // Preparing the data or training.
  Running = 0,
  // Trained to the end; the outputs are written.
  Finished = 1,
  // Stopped by an error (`FineTuneStatus::error_message`).
  Failed = 2,
  // Stopped by `cancel` after writing a checkpoint.
  Cancelled = 3,
};
#endif // CXXBRIDGE1_ENUM_brainsam$FineTuneState

#ifndef CXXBRIDGE1_ENUM_brainsam$FineTuneOutput
#define CXXBRIDGE1_ENUM_brainsam$FineTuneOutput
// Which output `FineTune::save` copies (as `brainsam_fine_tune_output`).
enum class FineTuneOutput : ::std::uint32_t {
  // The final full weights.
  Model = 0,
  // The final LoRA adapter (adapter training modes only).
  Adapter = 1,
  // The full weights with the best validation Dice (runs that validated only).
  BestModel = 2,
};
#endif // CXXBRIDGE1_ENUM_brainsam$FineTuneOutput

#ifndef CXXBRIDGE1_STRUCT_brainsam$FineTuneOptions
#define CXXBRIDGE1_STRUCT_brainsam$FineTuneOptions
// Options of `start_fine_tune`.
struct FineTuneOptions final {
  // Continue from the checkpoint in the run's output folder, if any.
  bool resume CXX_DEFAULT_VALUE(false);
  // Start afresh even if the output folder holds an earlier run (its results are
  // deleted); without it, or `resume`, such a folder is refused.
  bool overwrite CXX_DEFAULT_VALUE(false);

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$FineTuneOptions

#ifndef CXXBRIDGE1_STRUCT_brainsam$FineTuneStatus
#define CXXBRIDGE1_STRUCT_brainsam$FineTuneStatus
// A snapshot of a fine-tuning run (as `brainsam_fine_tune_status`).
struct FineTuneStatus final {
  // Where the run is.
  ::brainsam::FineTuneState state;
  // Iterations done (resumed ones included).
  ::std::uint64_t iteration CXX_DEFAULT_VALUE(0);
  // Iterations of the whole run.
  ::std::uint64_t total CXX_DEFAULT_VALUE(0);
  // Loss of the last iteration (NaN before the first).
  double loss CXX_DEFAULT_VALUE(0);
  // Learning rate of the last iteration (NaN before the first).
  double lr CXX_DEFAULT_VALUE(0);
  // Mean Dice of the last validation (NaN when none ran yet).
  double last_validation_dice CXX_DEFAULT_VALUE(0);
  // Best mean validation Dice so far (NaN when none ran yet).
  double best_validation_dice CXX_DEFAULT_VALUE(0);
  // The error when `state` is `Failed`; else empty.
  ::rust::String error_message;

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$FineTuneStatus

#ifndef CXXBRIDGE1_STRUCT_brainsam$AdaptOptions
#define CXXBRIDGE1_STRUCT_brainsam$AdaptOptions
// Options of `Model::start_adapt`, as `brainsam_adapt_options`: zero (or an empty
// string) lets the library choose from the amount of data.
struct AdaptOptions final {
  // Iterations (0: chosen from the number of pairs).
  ::std::uint64_t iterations CXX_DEFAULT_VALUE(0);
  // Time budget in minutes (0: none): the run stops then and keeps the best
  // checkpoint.
  double minutes CXX_DEFAULT_VALUE(0);
  // Base learning rate (0: the library's default).
  double learning_rate CXX_DEFAULT_VALUE(0);
  // Seed of every random choice (same seed, data and base: same adapter on the CPU).
  ::std::uint64_t seed CXX_DEFAULT_VALUE(0);
  // `auto`, `cpu` or `cuda` (empty: auto).
  ::rust::String device;

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$AdaptOptions

#ifndef CXXBRIDGE1_STRUCT_brainsam$AdaptStatus
#define CXXBRIDGE1_STRUCT_brainsam$AdaptStatus
// A snapshot of an adaptation (as `brainsam_adapt_status`).
struct AdaptStatus final {
  // Where the run is (`Cancelled`: stopped, no adapter).
  ::brainsam::FineTuneState state;
  // Iterations done.
  ::std::uint64_t iteration CXX_DEFAULT_VALUE(0);
  // Iterations planned (0 while the data is prepared).
  ::std::uint64_t total CXX_DEFAULT_VALUE(0);
  // Loss of the last iteration (NaN before the first).
  double loss CXX_DEFAULT_VALUE(0);
  // Mean Dice of the last validation (NaN: none yet).
  double last_validation_dice CXX_DEFAULT_VALUE(0);
  // Best validation mean Dice so far, the base model's included (NaN: none yet).
  double best_validation_dice CXX_DEFAULT_VALUE(0);
  // Seconds since the start.
  double elapsed_seconds CXX_DEFAULT_VALUE(0);
  // Estimated seconds left (NaN before the first iteration).
  double eta_seconds CXX_DEFAULT_VALUE(0);
  // The error when `state` is `Failed`; else empty.
  ::rust::String error_message;

  using IsRelocatable = ::std::true_type;
};
#endif // CXXBRIDGE1_STRUCT_brainsam$AdaptStatus

#ifndef CXXBRIDGE1_STRUCT_brainsam$Model
#define CXXBRIDGE1_STRUCT_brainsam$Model
// A loaded model; share it between sessions with `create_session`.
struct Model final : public ::rust::Opaque {
  // A new session on this model; the session keeps the model alive.
  ::rust::Box<::brainsam::Session> create_session() const;

  // A new session with options (as `brainsam_session_create_with_options`).
  ::rust::Box<::brainsam::Session> create_session_with_options(::brainsam::SessionOptions const &options) const;

  // Starts adapting this model (loaded from a checkpoint file, without adapter) to
  // the user's site from `pairs` (copied), as `brainsam_adapt_start`.
  ::rust::Box<::brainsam::Adapt> start_adapt(::brainsam::AdaptPairs const &pairs, ::brainsam::AdaptOptions const &options) const;

  ~Model() = delete;

private:
  friend ::rust::layout;
  struct layout {
    static ::std::size_t size() noexcept;
    static ::std::size_t align() noexcept;
  };
};
#endif // CXXBRIDGE1_STRUCT_brainsam$Model

#ifndef CXXBRIDGE1_STRUCT_brainsam$Session
#define CXXBRIDGE1_STRUCT_brainsam$Session
// A segmentation session on one volume.
struct Session final : public ::rust::Opaque {
  // Sets the volume (voxels copied), replacing any earlier one.
  void set_volume(::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> voxels);

  // Automatic segmentation of all 12 structures.
  void segment_all(::brainsam::ProgressCallback const &progress);

  // Adds a point prompt; returns its slice.
  ::std::uint64_t add_point(::std::uint32_t structure, ::std::array<double, 3> ijk, bool positive);

  // Sets the box prompt of a structure on one slice; returns the slice.
  ::std::uint64_t add_box(::std::uint32_t structure, ::std::array<double, 3> corner_a, ::std::array<double, 3> corner_b);

  // Removes a structure's prompts on `slice`, or on all slices when negative.
  void clear_prompts(::std::uint32_t structure, ::std::int64_t slice);

  // Re-segments a structure on one slice with its prompts; returns voxels changed.
  ::std::uint64_t segment_structure(::std::uint32_t structure, ::std::uint64_t slice);

  // 3D segmentation of a structure from one box on one slice, propagated through
  // the neighbouring slices until the mask vanishes (needs a model with an
  // interactive head); returns the slices that received a box.
  ::brainsam::SliceRange segment_structure_3d(::std::uint32_t structure, ::std::array<double, 3> corner_a, ::std::array<double, 3> corner_b);

  // Propagates a structure from its current mask on `from_slice` to the
  // neighbouring slices (`direction` 0 both, 1 forward: increasing indices, 2
  // backward; at most `max_slices` per direction, 0 no limit) until the mask
  // vanishes; returns the slices covered, the start slice included.
  ::brainsam::SliceRange propagate_structure(::std::uint32_t structure, ::std::uint64_t from_slice, ::std::uint32_t direction, ::std::uint32_t max_slices);

  // The voxel axis the session slices along.
  ::std::uint32_t slicing_axis() const;

  // The region of interest's slices.
  ::brainsam::SliceRange slice_range() const;

  // A copy of the label volume (class ids, input voxel order).
  ::rust::Vec<::std::uint8_t> labels() const;

  // Copies the label volume into `buffer` (at least the voxel count).
  void copy_labels(::rust::Slice<::std::uint8_t > buffer) const;

  // Volume and confidence of a structure.
  ::brainsam::StructureStats structure_stats(::std::uint32_t structure) const;

  ~Session() = delete;

private:
  friend ::rust::layout;
  struct layout {
    static ::std::size_t size() noexcept;
    static ::std::size_t align() noexcept;
  };
};
#endif // CXXBRIDGE1_STRUCT_brainsam$Session

#ifndef CXXBRIDGE1_STRUCT_brainsam$FineTune
#define CXXBRIDGE1_STRUCT_brainsam$FineTune
// A fine-tuning run on a background thread; dropping it cancels the run and
// waits for its thread.
struct FineTune final : public ::rust::Opaque {
  // The run's progress and state; never blocks on training.
  ::brainsam::FineTuneStatus progress() const noexcept;

  // Asks the run to stop after its current iteration (a checkpoint is written).
  void cancel() const noexcept;

  // Blocks until the run has ended: `Finished` or `Cancelled`; throws when it
  // failed.
  ::brainsam::FineTuneState wait() const;

  // Copies an output of a finished run to `path` atomically.
  void save(::brainsam::FineTuneOutput output, ::rust::Str path) const;

  ~FineTune() = delete;

private:
  friend ::rust::layout;
  struct layout {
    static ::std::size_t size() noexcept;
    static ::std::size_t align() noexcept;
  };
};
#endif // CXXBRIDGE1_STRUCT_brainsam$FineTune

#ifndef CXXBRIDGE1_STRUCT_brainsam$AdaptPairs
#define CXXBRIDGE1_STRUCT_brainsam$AdaptPairs
// Corrected examples for `Model::start_adapt`: (image, label map) pairs copied
// in with `add`.
struct AdaptPairs final : public ::rust::Opaque {
  // Adds (copies) an image and its label map, both on `geometry`; `label_scheme`
  // names the label codes (`classes`, `freesurfer`, `aal`, `harvard-oxford`,
  // `neuromorphometrics`, or a mapping file's path; empty: `classes`); `name` is used
  // in messages (empty: "pair N"). The pair is checked here (grid, finite voxels,
  // codes known to the scheme, at least one labelled structure).
  void add(::rust::Str name, ::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> image, ::rust::Slice<float const> labels, ::rust::Str label_scheme);

  // Number of pairs added.
  ::std::size_t len() const noexcept;

  ~AdaptPairs() = delete;

private:
  friend ::rust::layout;
  struct layout {
    static ::std::size_t size() noexcept;
    static ::std::size_t align() noexcept;
  };
};
#endif // CXXBRIDGE1_STRUCT_brainsam$AdaptPairs

#ifndef CXXBRIDGE1_STRUCT_brainsam$Adapt
#define CXXBRIDGE1_STRUCT_brainsam$Adapt
// An adaptation on a background thread; dropping it cancels the run and waits
// for its thread.
struct Adapt final : public ::rust::Opaque {
  // The run's progress and state; never blocks on training.
  ::brainsam::AdaptStatus progress() const noexcept;

  // Asks the run to stop after its current iteration (no adapter is produced).
  void cancel() const noexcept;

  // Blocks until the run has ended: `Finished` or `Cancelled`; throws when it
  // failed.
  ::brainsam::FineTuneState wait() const;

  // Writes the adapter of a finished run to `path` atomically (throws while
  // running, after a cancel or a failure).
  void save(::rust::Str path) const;

  ~Adapt() = delete;

private:
  friend ::rust::layout;
  struct layout {
    static ::std::size_t size() noexcept;
    static ::std::size_t align() noexcept;
  };
};
#endif // CXXBRIDGE1_STRUCT_brainsam$Adapt

extern "C" {
bool brainsam$cxxbridge1$205$ProgressCallback$report(::brainsam::ProgressCallback const &self, ::std::uint64_t done, ::std::uint64_t total) noexcept {
  bool (::brainsam::ProgressCallback::*report$)(::std::uint64_t, ::std::uint64_t) const = &::brainsam::ProgressCallback::report;
  return (self.*report$)(done, total);
}

::rust::repr::Fat brainsam$cxxbridge1$205$version() noexcept;

::std::uint32_t brainsam$cxxbridge1$205$abi_version() noexcept;

void brainsam$cxxbridge1$205$runtime_info(::brainsam::RuntimeInfo *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$parse_device(::rust::Str text, ::brainsam::DeviceSpec *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$parse_precision(::rust::Str text, ::brainsam::Precision *return$) noexcept;
::std::size_t brainsam$cxxbridge1$205$Model$operator$sizeof() noexcept;
::std::size_t brainsam$cxxbridge1$205$Model$operator$alignof() noexcept;
::std::size_t brainsam$cxxbridge1$205$Session$operator$sizeof() noexcept;
::std::size_t brainsam$cxxbridge1$205$Session$operator$alignof() noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$load_model(::brainsam::ModelOptions const &options, ::rust::Box<::brainsam::Model> *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Model$create_session(::brainsam::Model const &self, ::rust::Box<::brainsam::Session> *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Model$create_session_with_options(::brainsam::Model const &self, ::brainsam::SessionOptions const &options, ::rust::Box<::brainsam::Session> *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$set_volume(::brainsam::Session &self, ::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> voxels) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$segment_all(::brainsam::Session &self, ::brainsam::ProgressCallback const &progress) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$add_point(::brainsam::Session &self, ::std::uint32_t structure, ::std::array<double, 3> *ijk, bool positive, ::std::uint64_t *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$add_box(::brainsam::Session &self, ::std::uint32_t structure, ::std::array<double, 3> *corner_a, ::std::array<double, 3> *corner_b, ::std::uint64_t *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$clear_prompts(::brainsam::Session &self, ::std::uint32_t structure, ::std::int64_t slice) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$segment_structure(::brainsam::Session &self, ::std::uint32_t structure, ::std::uint64_t slice, ::std::uint64_t *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$segment_structure_3d(::brainsam::Session &self, ::std::uint32_t structure, ::std::array<double, 3> *corner_a, ::std::array<double, 3> *corner_b, ::brainsam::SliceRange *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$propagate_structure(::brainsam::Session &self, ::std::uint32_t structure, ::std::uint64_t from_slice, ::std::uint32_t direction, ::std::uint32_t max_slices, ::brainsam::SliceRange *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$slicing_axis(::brainsam::Session const &self, ::std::uint32_t *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$slice_range(::brainsam::Session const &self, ::brainsam::SliceRange *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$labels(::brainsam::Session const &self, ::rust::Vec<::std::uint8_t> *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$copy_labels(::brainsam::Session const &self, ::rust::Slice<::std::uint8_t > buffer) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Session$structure_stats(::brainsam::Session const &self, ::std::uint32_t structure, ::brainsam::StructureStats *return$) noexcept;
::std::size_t brainsam$cxxbridge1$205$FineTune$operator$sizeof() noexcept;
::std::size_t brainsam$cxxbridge1$205$FineTune$operator$alignof() noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$start_fine_tune(::rust::Str config_toml_path, ::brainsam::FineTuneOptions const &options, ::rust::Box<::brainsam::FineTune> *return$) noexcept;

void brainsam$cxxbridge1$205$FineTune$progress(::brainsam::FineTune const &self, ::brainsam::FineTuneStatus *return$) noexcept;

void brainsam$cxxbridge1$205$FineTune$cancel(::brainsam::FineTune const &self) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$FineTune$wait(::brainsam::FineTune const &self, ::brainsam::FineTuneState *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$FineTune$save(::brainsam::FineTune const &self, ::brainsam::FineTuneOutput output, ::rust::Str path) noexcept;
::std::size_t brainsam$cxxbridge1$205$AdaptPairs$operator$sizeof() noexcept;
::std::size_t brainsam$cxxbridge1$205$AdaptPairs$operator$alignof() noexcept;

::brainsam::AdaptPairs *brainsam$cxxbridge1$205$new_adapt_pairs() noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$AdaptPairs$add(::brainsam::AdaptPairs &self, ::rust::Str name, ::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> image, ::rust::Slice<float const> labels, ::rust::Str label_scheme) noexcept;

::std::size_t brainsam$cxxbridge1$205$AdaptPairs$len(::brainsam::AdaptPairs const &self) noexcept;
::std::size_t brainsam$cxxbridge1$205$Adapt$operator$sizeof() noexcept;
::std::size_t brainsam$cxxbridge1$205$Adapt$operator$alignof() noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Model$start_adapt(::brainsam::Model const &self, ::brainsam::AdaptPairs const &pairs, ::brainsam::AdaptOptions const &options, ::rust::Box<::brainsam::Adapt> *return$) noexcept;

void brainsam$cxxbridge1$205$Adapt$progress(::brainsam::Adapt const &self, ::brainsam::AdaptStatus *return$) noexcept;

void brainsam$cxxbridge1$205$Adapt$cancel(::brainsam::Adapt const &self) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Adapt$wait(::brainsam::Adapt const &self, ::brainsam::FineTuneState *return$) noexcept;

::rust::repr::PtrLen brainsam$cxxbridge1$205$Adapt$save(::brainsam::Adapt const &self, ::rust::Str path) noexcept;
} // extern "C"

// The library version, e.g. "0.1.0".
::rust::Str version() noexcept {
  return ::rust::impl<::rust::Str>::new_unchecked(brainsam$cxxbridge1$205$version());
}

// The C ABI version of the loaded library.
::std::uint32_t abi_version() noexcept {
  return brainsam$cxxbridge1$205$abi_version();
}

// Queries the libtorch runtime.
::brainsam::RuntimeInfo runtime_info() noexcept {
  ::rust::MaybeUninit<::brainsam::RuntimeInfo> return$;
  brainsam$cxxbridge1$205$runtime_info(&return$.value);
  return ::std::move(return$.value);
}

// Parses a device name ("auto", "cpu", "cuda", "cuda:N") as the command line
// does; throws naming the accepted names otherwise.
::brainsam::DeviceSpec parse_device(::rust::Str text) {
  ::rust::MaybeUninit<::brainsam::DeviceSpec> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$parse_device(text, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

// Parses a precision name ("auto", "fp32", "bf16", "fp16") as the command line
// does; throws naming the accepted names otherwise.
::brainsam::Precision parse_precision(::rust::Str text) {
  ::rust::MaybeUninit<::brainsam::Precision> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$parse_precision(text, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::std::size_t Model::layout::size() noexcept {
  return brainsam$cxxbridge1$205$Model$operator$sizeof();
}

::std::size_t Model::layout::align() noexcept {
  return brainsam$cxxbridge1$205$Model$operator$alignof();
}

::std::size_t Session::layout::size() noexcept {
  return brainsam$cxxbridge1$205$Session$operator$sizeof();
}

::std::size_t Session::layout::align() noexcept {
  return brainsam$cxxbridge1$205$Session$operator$alignof();
}

// Loads a model (as `brainsam_model_load`).
::rust::Box<::brainsam::Model> load_model(::brainsam::ModelOptions const &options) {
  ::rust::MaybeUninit<::rust::Box<::brainsam::Model>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$load_model(options, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::rust::Box<::brainsam::Session> Model::create_session() const {
  ::rust::MaybeUninit<::rust::Box<::brainsam::Session>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Model$create_session(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::rust::Box<::brainsam::Session> Model::create_session_with_options(::brainsam::SessionOptions const &options) const {
  ::rust::MaybeUninit<::rust::Box<::brainsam::Session>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Model$create_session_with_options(*this, options, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

void Session::set_volume(::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> voxels) {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$set_volume(*this, geometry, voxels);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

void Session::segment_all(::brainsam::ProgressCallback const &progress) {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$segment_all(*this, progress);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

::std::uint64_t Session::add_point(::std::uint32_t structure, ::std::array<double, 3> ijk, bool positive) {
  ::rust::ManuallyDrop<::std::array<double, 3>> ijk$(::std::move(ijk));
  ::rust::MaybeUninit<::std::uint64_t> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$add_point(*this, structure, &ijk$.value, positive, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::std::uint64_t Session::add_box(::std::uint32_t structure, ::std::array<double, 3> corner_a, ::std::array<double, 3> corner_b) {
  ::rust::ManuallyDrop<::std::array<double, 3>> corner_a$(::std::move(corner_a));
  ::rust::ManuallyDrop<::std::array<double, 3>> corner_b$(::std::move(corner_b));
  ::rust::MaybeUninit<::std::uint64_t> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$add_box(*this, structure, &corner_a$.value, &corner_b$.value, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

void Session::clear_prompts(::std::uint32_t structure, ::std::int64_t slice) {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$clear_prompts(*this, structure, slice);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

::std::uint64_t Session::segment_structure(::std::uint32_t structure, ::std::uint64_t slice) {
  ::rust::MaybeUninit<::std::uint64_t> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$segment_structure(*this, structure, slice, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::brainsam::SliceRange Session::segment_structure_3d(::std::uint32_t structure, ::std::array<double, 3> corner_a, ::std::array<double, 3> corner_b) {
  ::rust::ManuallyDrop<::std::array<double, 3>> corner_a$(::std::move(corner_a));
  ::rust::ManuallyDrop<::std::array<double, 3>> corner_b$(::std::move(corner_b));
  ::rust::MaybeUninit<::brainsam::SliceRange> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$segment_structure_3d(*this, structure, &corner_a$.value, &corner_b$.value, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::brainsam::SliceRange Session::propagate_structure(::std::uint32_t structure, ::std::uint64_t from_slice, ::std::uint32_t direction, ::std::uint32_t max_slices) {
  ::rust::MaybeUninit<::brainsam::SliceRange> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$propagate_structure(*this, structure, from_slice, direction, max_slices, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::std::uint32_t Session::slicing_axis() const {
  ::rust::MaybeUninit<::std::uint32_t> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$slicing_axis(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::brainsam::SliceRange Session::slice_range() const {
  ::rust::MaybeUninit<::brainsam::SliceRange> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$slice_range(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::rust::Vec<::std::uint8_t> Session::labels() const {
  ::rust::MaybeUninit<::rust::Vec<::std::uint8_t>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$labels(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

void Session::copy_labels(::rust::Slice<::std::uint8_t > buffer) const {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$copy_labels(*this, buffer);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

::brainsam::StructureStats Session::structure_stats(::std::uint32_t structure) const {
  ::rust::MaybeUninit<::brainsam::StructureStats> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Session$structure_stats(*this, structure, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::std::size_t FineTune::layout::size() noexcept {
  return brainsam$cxxbridge1$205$FineTune$operator$sizeof();
}

::std::size_t FineTune::layout::align() noexcept {
  return brainsam$cxxbridge1$205$FineTune$operator$alignof();
}

// Reads and checks the TOML configuration, then trains on a new thread (as
// `brainsam_fine_tune_start`).
::rust::Box<::brainsam::FineTune> start_fine_tune(::rust::Str config_toml_path, ::brainsam::FineTuneOptions const &options) {
  ::rust::MaybeUninit<::rust::Box<::brainsam::FineTune>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$start_fine_tune(config_toml_path, options, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::brainsam::FineTuneStatus FineTune::progress() const noexcept {
  ::rust::MaybeUninit<::brainsam::FineTuneStatus> return$;
  brainsam$cxxbridge1$205$FineTune$progress(*this, &return$.value);
  return ::std::move(return$.value);
}

void FineTune::cancel() const noexcept {
  brainsam$cxxbridge1$205$FineTune$cancel(*this);
}

::brainsam::FineTuneState FineTune::wait() const {
  ::rust::MaybeUninit<::brainsam::FineTuneState> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$FineTune$wait(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

void FineTune::save(::brainsam::FineTuneOutput output, ::rust::Str path) const {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$FineTune$save(*this, output, path);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

::std::size_t AdaptPairs::layout::size() noexcept {
  return brainsam$cxxbridge1$205$AdaptPairs$operator$sizeof();
}

::std::size_t AdaptPairs::layout::align() noexcept {
  return brainsam$cxxbridge1$205$AdaptPairs$operator$alignof();
}

// An empty list of pairs.
::rust::Box<::brainsam::AdaptPairs> new_adapt_pairs() noexcept {
  return ::rust::Box<::brainsam::AdaptPairs>::from_raw(brainsam$cxxbridge1$205$new_adapt_pairs());
}

void AdaptPairs::add(::rust::Str name, ::brainsam::VolumeGeometry const &geometry, ::rust::Slice<float const> image, ::rust::Slice<float const> labels, ::rust::Str label_scheme) {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$AdaptPairs$add(*this, name, geometry, image, labels, label_scheme);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}

::std::size_t AdaptPairs::len() const noexcept {
  return brainsam$cxxbridge1$205$AdaptPairs$len(*this);
}

::std::size_t Adapt::layout::size() noexcept {
  return brainsam$cxxbridge1$205$Adapt$operator$sizeof();
}

::std::size_t Adapt::layout::align() noexcept {
  return brainsam$cxxbridge1$205$Adapt$operator$alignof();
}

::rust::Box<::brainsam::Adapt> Model::start_adapt(::brainsam::AdaptPairs const &pairs, ::brainsam::AdaptOptions const &options) const {
  ::rust::MaybeUninit<::rust::Box<::brainsam::Adapt>> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Model$start_adapt(*this, pairs, options, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

::brainsam::AdaptStatus Adapt::progress() const noexcept {
  ::rust::MaybeUninit<::brainsam::AdaptStatus> return$;
  brainsam$cxxbridge1$205$Adapt$progress(*this, &return$.value);
  return ::std::move(return$.value);
}

void Adapt::cancel() const noexcept {
  brainsam$cxxbridge1$205$Adapt$cancel(*this);
}

::brainsam::FineTuneState Adapt::wait() const {
  ::rust::MaybeUninit<::brainsam::FineTuneState> return$;
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Adapt$wait(*this, &return$.value);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
  return ::std::move(return$.value);
}

void Adapt::save(::rust::Str path) const {
  ::rust::repr::PtrLen error$ = brainsam$cxxbridge1$205$Adapt$save(*this, path);
  if (error$.ptr) {
    throw ::rust::impl<::rust::Error>::error(error$);
  }
}
} // namespace brainsam

extern "C" {
::brainsam::Model *cxxbridge1$box$brainsam$Model$alloc() noexcept;
void cxxbridge1$box$brainsam$Model$dealloc(::brainsam::Model *) noexcept;
void cxxbridge1$box$brainsam$Model$drop(::rust::Box<::brainsam::Model> *ptr) noexcept;

::brainsam::Session *cxxbridge1$box$brainsam$Session$alloc() noexcept;
void cxxbridge1$box$brainsam$Session$dealloc(::brainsam::Session *) noexcept;
void cxxbridge1$box$brainsam$Session$drop(::rust::Box<::brainsam::Session> *ptr) noexcept;

::brainsam::FineTune *cxxbridge1$box$brainsam$FineTune$alloc() noexcept;
void cxxbridge1$box$brainsam$FineTune$dealloc(::brainsam::FineTune *) noexcept;
void cxxbridge1$box$brainsam$FineTune$drop(::rust::Box<::brainsam::FineTune> *ptr) noexcept;

::brainsam::AdaptPairs *cxxbridge1$box$brainsam$AdaptPairs$alloc() noexcept;
void cxxbridge1$box$brainsam$AdaptPairs$dealloc(::brainsam::AdaptPairs *) noexcept;
void cxxbridge1$box$brainsam$AdaptPairs$drop(::rust::Box<::brainsam::AdaptPairs> *ptr) noexcept;

::brainsam::Adapt *cxxbridge1$box$brainsam$Adapt$alloc() noexcept;
void cxxbridge1$box$brainsam$Adapt$dealloc(::brainsam::Adapt *) noexcept;
void cxxbridge1$box$brainsam$Adapt$drop(::rust::Box<::brainsam::Adapt> *ptr) noexcept;
} // extern "C"

namespace rust {
inline namespace cxxbridge1 {
template <>
::brainsam::Model *Box<::brainsam::Model>::allocation::alloc() noexcept {
  return cxxbridge1$box$brainsam$Model$alloc();
}
template <>
void Box<::brainsam::Model>::allocation::dealloc(::brainsam::Model *ptr) noexcept {
  cxxbridge1$box$brainsam$Model$dealloc(ptr);
}
template <>
void Box<::brainsam::Model>::drop() noexcept {
  cxxbridge1$box$brainsam$Model$drop(this);
}
template <>
::brainsam::Session *Box<::brainsam::Session>::allocation::alloc() noexcept {
  return cxxbridge1$box$brainsam$Session$alloc();
}
template <>
void Box<::brainsam::Session>::allocation::dealloc(::brainsam::Session *ptr) noexcept {
  cxxbridge1$box$brainsam$Session$dealloc(ptr);
}
template <>
void Box<::brainsam::Session>::drop() noexcept {
  cxxbridge1$box$brainsam$Session$drop(this);
}
template <>
::brainsam::FineTune *Box<::brainsam::FineTune>::allocation::alloc() noexcept {
  return cxxbridge1$box$brainsam$FineTune$alloc();
}
template <>
void Box<::brainsam::FineTune>::allocation::dealloc(::brainsam::FineTune *ptr) noexcept {
  cxxbridge1$box$brainsam$FineTune$dealloc(ptr);
}
template <>
void Box<::brainsam::FineTune>::drop() noexcept {
  cxxbridge1$box$brainsam$FineTune$drop(this);
}
template <>
::brainsam::AdaptPairs *Box<::brainsam::AdaptPairs>::allocation::alloc() noexcept {
  return cxxbridge1$box$brainsam$AdaptPairs$alloc();
}
template <>
void Box<::brainsam::AdaptPairs>::allocation::dealloc(::brainsam::AdaptPairs *ptr) noexcept {
  cxxbridge1$box$brainsam$AdaptPairs$dealloc(ptr);
}
template <>
void Box<::brainsam::AdaptPairs>::drop() noexcept {
  cxxbridge1$box$brainsam$AdaptPairs$drop(this);
}
template <>
::brainsam::Adapt *Box<::brainsam::Adapt>::allocation::alloc() noexcept {
  return cxxbridge1$box$brainsam$Adapt$alloc();
}
template <>
void Box<::brainsam::Adapt>::allocation::dealloc(::brainsam::Adapt *ptr) noexcept {
  cxxbridge1$box$brainsam$Adapt$dealloc(ptr);
}
template <>
void Box<::brainsam::Adapt>::drop() noexcept {
  cxxbridge1$box$brainsam$Adapt$drop(this);
}
} // namespace cxxbridge1
} // namespace rust

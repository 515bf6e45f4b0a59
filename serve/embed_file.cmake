# cmake -DIN=file -DOUT=file.cc -DNAME=Fn -P embed_file.cmake: writes a .cc defining
# std::string_view pmpd::serve::Fn() over IN's bytes (hex, so any content is safe).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){24})" "\\1\n" body "${body}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by serve/embed_file.cmake; do not edit.\n"
  "#include <string_view>\nnamespace pmpd::serve {\nnamespace {\n"
  "const unsigned char kBytes[] = {\n${body}0};\n}  // namespace\n"
  "std::string_view ${NAME}() { return {reinterpret_cast<const char*>(kBytes), ${bytes}}; }\n"
  "}  // namespace pmpd::serve\n")
file(RENAME "${OUT}.tmp" "${OUT}")

# Runs assemble_golden for one file and keeps the result only if its SHA-256 is the recorded one.
#   cmake -DTOOL=... -DDIR=... -DNAME=... -DOUT=... -P assemble_golden.cmake
execute_process(COMMAND ${TOOL} ${DIR} ${NAME} ${OUT}.partial RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "assembling ${NAME} failed")
endif()
file(READ ${DIR}/${NAME}.parts.json recipe)
string(JSON expected GET "${recipe}" sha256)
file(SHA256 ${OUT}.partial actual)
if(NOT actual STREQUAL expected)
  file(REMOVE ${OUT}.partial)
  message(FATAL_ERROR "${NAME}: assembled SHA-256 ${actual}, recorded ${expected}")
endif()
file(RENAME ${OUT}.partial ${OUT})

/*  beacon-notes: the notes service (progress notes, signing, addenda,
 *  supervision, overdue documentation). Settings and the method table are in
 *  service.c. */
#include "notes.h"

int main(int argc, char **argv)
{
    return bc_service_main(&notes_service, argc, argv);
}
